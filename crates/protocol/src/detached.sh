# flankbox detached processes, over the exec channel alone (POSIX sh + coreutils + setsid).
# Run as: sh -c "$SCRIPT" flankbox-detached SUBCOMMAND ARGS...
#
# A process's directory, $ROOT/<id> (ROOT: /tmp/.flankbox/detached) (mode 700, so only its user sees it):
#   cmd           the command as the client described it (one line of JSON), for listings;
#                 its mtime is the start time
#   pid           the command's pid, which is also its process group and session
#   supervisor    the supervisor's pid
#   in            a FIFO: the command's stdin; `holder` keeps it open until stdin is closed
#   o, e          FIFOs: the command's stdout and stderr (o2, e2: after tee, for `run`)
#   out.NNNNNNNN  stdout in segments of SEGMENT bytes; segment n holds bytes [n*S, (n+1)*S)
#   err.NNNNNNNN  stderr, likewise; the oldest segments go once more than KEEP are kept
#   exit          the exit code, written once both streams are complete
# (pid, holder, supervisor and exit are each written by one `echo`, one write: a reader that
# finds one non-empty (`-s`) finds it whole)
#
# attach writes frames on stdout, so that output, loss and exit share one ordered channel:
#   "O <n>\n" + n bytes of stdout     "E <n>\n" + n bytes of stderr
#   "G <stream> <offset>\n"  that stream's bytes before <offset> are no longer kept
#   "X <code>\n"             the process ended with <code> ("X -" if its supervisor vanished)
#   "N\n"                    no such process
set -u
ROOT=${FLANKBOX_DETACHED_ROOT:-/tmp/.flankbox/detached}
SEGMENT=${FLANKBOX_SEGMENT:-1048576}

seg_name() { printf '%s/%s.%08d' "$1" "$2" "$3"; }

# The number of the oldest kept segment of stream $2 in directory $1 (empty if none yet).
first_seg() {
  for f in "$1/$2".*; do
    [ -e "$f" ] || return 0
    n=${f##*.}
    while [ "${n#0}" != "$n" ] && [ ${#n} -gt 1 ]; do n=${n#0}; done
    echo "$n"
    return 0
  done
}

# Whether the process or its supervisor (which records the exit code just after) still runs.
alive() {
  for f in "$1/pid" "$1/supervisor"; do
    [ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && return 0
  done
  return 1
}

# Makes process $1's directory; sets d and keep_segs. Exits 127 naming a missing tool.
prepare() { # id keep_bytes cmd_json
  id=$1 keep=$2 cmd=$3
  d=$ROOT/$id
  for tool in setsid split tee stat mkfifo tail head sleep; do
    command -v "$tool" >/dev/null 2>&1 || {
      echo "flankbox: detached processes need '$tool' in the image (setsid: util-linux; the rest: coreutils)" >&2
      exit 127
    }
  done
  umask 077
  { [ -d "$ROOT" ] || mkdir -p "$ROOT"; } && mkdir "$d" || { echo "flankbox: cannot make $d" >&2; exit 1; }
  printf '%s\n' "$cmd" >"$d/cmd"
  mkfifo "$d/in" "$d/o" "$d/e" "$d/o2" "$d/e2" || exit 1
  keep_segs=$(( (keep + SEGMENT - 1) / SEGMENT ))
  [ "$keep_segs" -ge 2 ] || keep_segs=2
}

# Starts the supervisor of $d in a session of its own, so that it outlives the exec that
# started it; $! is the supervisor. live=1: it also copies the output, as it comes, to its own
# stdout and stderr (the starting exec's), and carries on with the files alone once that exec
# is gone (a write to a pipe nobody reads fails with EPIPE, SIGPIPE being ignored).
supervise() { # live argv...
  live=$1
  shift
  exec setsid sh -c '
    d=$1 seg=$2 keep=$3 live=$4
    shift 4
    cd "$d" || exit 1
    echo $$ >supervisor
    if [ "$live" = 1 ]; then
      # tee: to the exec first (its stdout), then through o2/e2 to the files; SIGPIPE is
      # ignored by tee alone, not by the command.
      split -a 8 -d -b "$seg" - out. <o2 >/dev/null & so=$!
      split -a 8 -d -b "$seg" - err. <e2 >/dev/null & se=$!
      ( trap "" PIPE; exec tee o2 <o 2>/dev/null ) &
      ( trap "" PIPE; exec tee e2 <e >&2 2>/dev/null ) &
    else
      split -a 8 -d -b "$seg" - out. <o & so=$!
      split -a 8 -d -b "$seg" - err. <e & se=$!
    fi
    sleep 2147483647 >in 2>/dev/null & holder=$!
    echo "$holder" >holder
    # Not a group leader here, so setsid does not fork: $! is the command, its own group.
    setsid "$@" <in >o 2>e & pid=$!
    echo "$pid" >pid
    prune() {
      for s in out err; do
        ls "$s".* 2>/dev/null | head -n "-$keep" | while read -r f; do rm -f "$f"; done
      done
    }
    ( while sleep 0.5 && { kill -0 "$pid" || kill -0 "$so"; } 2>/dev/null; do prune; done ) >/dev/null 2>&1 &
    # sh reports a command killed by a signal ("Killed") on its stderr, which is the stderr of
    # the live exec: shown as output, or, that exec gone, a dead pipe whose SIGPIPE ends the
    # supervisor before it records the exit code. (No quote marks in here: sh -c quoting.)
    exec 2>/dev/null
    wait "$pid"; code=$?
    kill "$holder" 2>/dev/null
    wait "$so" "$se"
    echo "$code" >exit
    prune >/dev/null 2>&1 </dev/null &
    exit "$code"
  ' flankbox-supervisor "$d" "$SEGMENT" "$keep_segs" "$live" "$@"
}

spawn() { # id keep_bytes cmd_json argv...
  prepare "$1" "$2" "$3"
  shift 3
  supervise 0 "$@" </dev/null >/dev/null 2>&1 &
  # Answer once the command runs (or could not start), so a kill right after finds it.
  await_file "$d" pid || { echo "flankbox: the supervisor did not start" >&2; exit 1; }
  echo "$id"
}

# Spawns and follows live in one exec: "S\n" on stdout once the process's directory is made,
# then the process's stdout and stderr as they come on this exec's own, and its exit code as
# this exec's (255 when there is none to give: the client then asks with an attach). Stdin
# (with $4 = 1) goes to the process. A dropped connection ends this exec, not the process:
# the host kills this exec's group (the supervisor has a session of its own) and closes the
# exec's pipes, so tee's next write fails and the output goes on into the files alone. That
# a dropped exec's pipes close is assumed of Northflank too (a kubelet exec stream's end
# closes them); were they left open and unread, the process would block once they filled.
run() { # id keep_bytes cmd_json stdin(0|1) argv...
  prepare "$1" "$2" "$3"
  with_stdin=$4
  shift 4
  # Alive until the supervisor, which writes its own pid over this, has started: a listing
  # right after the header sees a process that runs.
  echo $$ >"$d/supervisor"
  printf 'S\n'
  supervise 1 "$@" </dev/null & sup=$!
  [ "$with_stdin" = 1 ] && feed_stdin
  wait "$sup"
  code=$?
  [ -z "$feeder" ] || kill "$feeder" 2>/dev/null
  [ -s "$d/exit" ] || exit 255
  exit "$code"
}

list() {
  [ -d "$ROOT" ] || return 0
  for d in "$ROOT"/*/; do
    d=${d%/}
    [ -e "$d/cmd" ] || continue
    if [ -s "$d/exit" ]; then state="exited $(cat "$d/exit")"
    elif alive "$d"; then state=running
    else state=lost
    fi
    printf '%s\t%s\t%s\t%s\n' "${d##*/}" "$(stat -c %Y "$d/cmd" 2>/dev/null)" "$state" "$(cat "$d/cmd")"
  done
}

# Sends what stream $1 has from its position on; sets moved=1 when it sent anything.
pump() {
  s=$1
  eval "n=\$seg_$s off=\$off_$s"
  while :; do
    f=$(seg_name "$d" "$s" "$n")
    # Opened first: a segment pruned from now on still reads in full through this descriptor.
    if ! { command exec 4<"$f"; } 2>/dev/null; then
      first=$(first_seg "$d" "$s")
      if [ -n "$first" ] && [ "$first" -gt "$n" ]; then
        printf 'G %s %s\n' "$s" $((first * SEGMENT))
        n=$first off=0
        continue
      fi
      break
    fi
    size=$(stat -L -c %s /dev/fd/4)
    if [ "$size" -gt "$off" ]; then
      len=$((size - off))
      if [ "$s" = out ]; then printf 'O %s\n' $len; else printf 'E %s\n' $len; fi
      tail -c +$((off + 1)) <&4 | head -c $len
      off=$size moved=1
    fi
    exec 4<&-
    [ "$off" -ge "$SEGMENT" ] || break
    n=$((n + 1)) off=0
  done
  eval "seg_$s=\$n off_$s=\$off"
}

attach() { # id from_out from_err stdin(0|1)
  d=$ROOT/$1
  [ -e "$d/cmd" ] || { echo N; exit 0; }
  seg_out=$(($2 / SEGMENT)) off_out=$(($2 % SEGMENT))
  seg_err=$(($3 / SEGMENT)) off_err=$(($3 % SEGMENT))
  [ "$4" = 1 ] && [ ! -s "$d/exit" ] && feed_stdin
  # Polls: every 20 ms while output comes, backing off to every 100 ms while it does not, so
  # a quiet process costs its sandbox a few processes a second, not fifty.
  lost=0 quiet=0 nap=0.02
  while :; do
    done_=0
    [ -s "$d/exit" ] && done_=1
    moved=0
    pump out
    pump err
    if [ $done_ = 1 ]; then
      printf 'X %s\n' "$(cat "$d/exit")"
      break
    fi
    if [ $moved = 1 ]; then
      quiet=0 nap=0.02
      continue
    fi
    quiet=$((quiet + 1))
    # Whether the supervisor vanished (the sandbox restarted under it), now and then; it
    # writes `exit` before it ends, so three looks in a row without either is a loss.
    if [ $((quiet % 10)) = 0 ]; then
      if ! alive "$d" && [ ! -s "$d/exit" ]; then
        lost=$((lost + 1))
        [ $lost -lt 3 ] || { echo 'X -'; break; }
      else
        lost=0
      fi
    fi
    sleep $nap
    case $nap in 0.02) nap=0.04 ;; 0.04) nap=0.07 ;; *) nap=0.1 ;; esac
  done
  [ -z "$feeder" ] || kill "$feeder" 2>/dev/null
  exit 0
}

# Sends this exec's stdin to the process of $d, in the background (sets feeder); an end of it
# (not a dropped socket, which kills the cat) closes the process's stdin.
feeder=
feed_stdin() {
  exec 3<&0
  ( cat <&3 >"$d/in" && kill "$(cat "$d/holder")" ) </dev/null >/dev/null 2>&1 &
  feeder=$!
  exec 3<&-
}

# Waits (up to 5 s) for file $2 of process directory $1: a `run` answers before its
# supervisor has written its files, so a signal right after it may come first.
await_file() {
  [ -e "$1/cmd" ] || return 1
  i=0
  while [ ! -s "$1/$2" ] && [ ! -s "$1/exit" ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i + 1)); done
  [ -s "$1/$2" ]
}

signal() { # id signal
  d=$ROOT/$1
  await_file "$d" pid || { [ -s "$d/exit" ] && exit 0; echo "flankbox: no process $1" >&2; exit 3; }
  [ -s "$d/exit" ] && exit 0
  kill -s "$2" -- "-$(cat "$d/pid")" 2>/dev/null || kill -s "$2" "$(cat "$d/pid")" 2>/dev/null
  exit 0
}

close_stdin() { # id
  d=$ROOT/$1
  await_file "$d" holder || { [ -s "$d/exit" ] && exit 0; echo "flankbox: no process $1" >&2; exit 3; }
  kill "$(cat "$d/holder")" 2>/dev/null
  exit 0
}

case ${1:-} in
  spawn) shift; spawn "$@" ;;
  run) shift; run "$@" ;;
  list) list ;;
  attach) shift; attach "$@" ;;
  signal) shift; signal "$@" ;;
  close-stdin) shift; close_stdin "$@" ;;
  *) echo "flankbox-detached: unknown subcommand ${1:-}" >&2; exit 2 ;;
esac
