// Where a Run's time goes, as User Timing marks on the page (`flankbox:STEP`): cheap, invisible,
// and read by the playground bench (tests/playground/bench.mjs) and by anyone in the browser's
// performance panel. Each Run clears the previous Run's marks, so a step's mark is this Run's
// (the marks are the page's: with several widgets, the latest Run's).
//
//   run           Run was pressed (run() began)
//   client        the client and its wasm are loaded and the playground's config is read
//   sandbox       the sandbox is ready (made now, or made before)
//   written       the code's file is written (only when it is too big to go with the spawn)
//   spawned       the program's exec session is open
//   first-byte    the program's first output reached the page
//   output-shown  the first output is drawn in the output pane
//   exit          the program's exit reached the page
//   exited        the status says "exited" (or "stopped")

/** The steps of a Run, in order. */
export const RUN_STEPS = ["run", "client", "sandbox", "written", "spawned", "first-byte", "output-shown", "exit", "exited"];

/** Marks `step` of the current Run. */
export function mark(step) {
  performance.mark(`flankbox:${step}`);
}

/** Starts a Run's marks afresh. */
export function markRunStart() {
  for (const step of RUN_STEPS) performance.clearMarks(`flankbox:${step}`);
  mark("run");
}
