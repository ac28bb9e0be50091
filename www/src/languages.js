// The languages the playground offers: each with a file, a command, an editor mode and a
// small example. Everything runs on the sandbox image's own toolchain. Each mode is a chunk of
// its own, loaded when the editor first shows that language.

export const LANGUAGES = {
  python: {
    label: "Python",
    file: "/workspace/main.py",
    // -u: unbuffered, so output shows as it is printed.
    run: ["python3", "-u", "/workspace/main.py"],
    mode: () => import("@codemirror/lang-python").then((m) => m.python()),
    example: `import time

name = input("What is your name? ")
for i in range(3):
    print(f"Hello, {name}! ({i + 1})")
    time.sleep(0.3)
`,
  },
  javascript: {
    label: "JavaScript (Node)",
    file: "/workspace/main.js",
    run: ["node", "/workspace/main.js"],
    mode: () => import("@codemirror/lang-javascript").then((m) => m.javascript()),
    example: `const fib = (n) => (n < 2 ? n : fib(n - 1) + fib(n - 2));
for (let i = 0; i < 10; i++) console.log(i, fib(i));
console.error("done, on stderr");
`,
  },
  bash: {
    label: "Bash",
    file: "/workspace/main.sh",
    run: ["bash", "/workspace/main.sh"],
    mode: async () => {
      const [{ StreamLanguage }, { shell }] = await Promise.all([import("@codemirror/language"), import("@codemirror/legacy-modes/mode/shell")]);
      return StreamLanguage.define(shell);
    },
    example: `echo "Running on $(uname -sr) as $(whoami)"
for f in /usr/bin/python3 /usr/bin/node /usr/bin/gcc; do
  printf '%-20s %s\\n' "$f" "$($f --version 2>&1 | head -1)"
done
`,
  },
  c: {
    label: "C (gcc)",
    file: "/workspace/main.c",
    // stdbuf: C buffers stdout fully on a pipe; line-live output is what a playground wants.
    run: ["bash", "-c", "gcc -O2 -Wall -o /tmp/main /workspace/main.c && exec stdbuf -o0 /tmp/main"],
    mode: () => import("@codemirror/lang-cpp").then((m) => m.cpp()),
    example: `#include <stdio.h>

int main(void) {
    long long a = 0, b = 1;
    for (int i = 0; i < 20; i++) {
        printf("%lld ", a);
        long long t = a + b; a = b; b = t;
    }
    printf("\\n");
    return 0;
}
`,
  },
  java: {
    label: "Java",
    file: "/workspace/Main.java",
    run: ["bash", "-c", "mkdir -p /tmp/java && cd /tmp/java && javac -d . /workspace/Main.java && exec java -cp . Main"],
    mode: () => import("@codemirror/lang-java").then((m) => m.java()),
    example: `public class Main {
    public static void main(String[] args) {
        System.out.println("Hello from Java " + System.getProperty("java.version"));
    }
}
`,
  },
};

export const DEFAULT_LANGUAGE = "python";

/** The most code (UTF-8 bytes) that goes inline with the spawn; more is written first, with
 * `writeFile`. It keeps the exec's first message far below the argument limit of Linux
 * (128 KiB per argument) and an edge proxy's frame limit (1 MiB by default). */
const INLINE_CODE_BYTES = 16 * 1024;

/** The command that writes `code` to `lang.file` and runs it, in one exec: a Run's file write
 * costs no round trip of its own. `sh`'s builtins do the writing (no process for it), and the
 * program replaces the shell, so its exit code, signals and stdin are its own. `undefined` when
 * the code must be written on its own first (too big, or a NUL, which no argument can hold). */
export function writeAndRun(lang, code) {
  if (code.includes("\0") || new TextEncoder().encode(code).length > INLINE_CODE_BYTES) return undefined;
  const script = 'dir="${1%/*}"; [ -d "$dir" ] || mkdir -p -- "$dir" || exit; printf %s "$2" > "$1" || exit; shift 2; exec "$@"';
  return ["sh", "-c", script, "sh", lang.file, code, ...lang.run];
}
