# flankbox detached processes, over the exec channel alone (POSIX sh + coreutils + setsid).
# Run as: sh -c "$SCRIPT" flankbox-detached SUBCOMMAND ARGS...
#
# A process's directory, $ROOT/<id> (ROOT: /tmp/.flankbox/detached) (mode 700, so only its user sees it):
#   cmd           the command as the client described it (one line of JSON), for listings
#   started       start time, seconds since the epoch
#   pid           the command's pid, which is also its process group and session
#   supervisor    the supervisor's pid
#   in            a FIFO: the command's stdin; `holder` keeps it open until stdin is closed
#   out.NNNNNNNN  stdout in segments of SEGMENT bytes; segment n holds bytes [n*S, (n+1)*S)
#   err.NNNNNNNN  stderr, likewise; the oldest segments go once more than KEEP are kept
#   exit          the exit code, written once both streams are complete
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
    [ -e "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && return 0
  done
  return 1
}

spawn() { # id keep_bytes cmd_json argv...
  id=$1 keep=$2 cmd=$3
  shift 3
  d=$ROOT/$id
  for tool in setsid split stat mkfifo tail head sleep date; do
    command -v "$tool" >/dev/null 2>&1 || {
      echo "flankbox: detached processes need '$tool' in the image (setsid: util-linux; the rest: coreutils)" >&2
      exit 127
    }
  done
  umask 077
  mkdir -p "$ROOT" && mkdir "$d" || { echo "flankbox: cannot make $d" >&2; exit 1; }
  printf '%s\n' "$cmd" >"$d/cmd"
  date +%s >"$d/started"
  mkfifo "$d/in" "$d/o" "$d/e" || exit 1
  keep_segs=$(( (keep + SEGMENT - 1) / SEGMENT ))
  [ "$keep_segs" -ge 2 ] || keep_segs=2
  # The supervisor: in a session of its own, so that the exec that started it can end.
  setsid sh -c '
    d=$1 seg=$2 keep=$3
    shift 3
    cd "$d" || exit 1
    echo $$ >supervisor
    split -a 8 -d -b "$seg" - out. <o & so=$!
    split -a 8 -d -b "$seg" - err. <e & se=$!
    sleep 2147483647 >in & holder=$!
    echo "$holder" >holder
    # Not a group leader here, so setsid does not fork: $! is the command, its own group.
    setsid "$@" <in >o 2>e & pid=$!
    echo "$pid" >pid.tmp && mv pid.tmp pid
    prune() {
      for s in out err; do
        ls "$s".* 2>/dev/null | head -n "-$keep" | while read -r f; do rm -f "$f"; done
      done
    }
    ( while kill -0 "$pid" 2>/dev/null || kill -0 "$so" 2>/dev/null; do prune; sleep 0.5; done ) &
    wait "$pid"; code=$?
    kill "$holder" 2>/dev/null
    wait "$so" "$se"
    prune
    echo "$code" >exit.tmp && mv exit.tmp exit
  ' flankbox-supervisor "$d" "$SEGMENT" "$keep_segs" "$@" </dev/null >/dev/null 2>&1 &
  # Answer once the command runs (or could not start), so a kill right after finds it.
  i=0
  while [ ! -e "$d/pid" ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i + 1)); done
  [ -e "$d/pid" ] || { echo "flankbox: the supervisor did not start" >&2; exit 1; }
  echo "$id"
}

list() {
  [ -d "$ROOT" ] || return 0
  for d in "$ROOT"/*/; do
    d=${d%/}
    [ -e "$d/cmd" ] || continue
    if [ -e "$d/exit" ]; then state="exited $(cat "$d/exit")"
    elif alive "$d"; then state=running
    else state=lost
    fi
    printf '%s\t%s\t%s\t%s\n' "${d##*/}" "$(cat "$d/started" 2>/dev/null)" "$state" "$(cat "$d/cmd")"
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
  feeder=
  if [ "$4" = 1 ] && [ ! -e "$d/exit" ]; then
    # Stdin from this exec goes to the process; an end of it (not a dropped socket, which
    # kills this cat) closes the process's stdin.
    exec 3<&0
    ( cat <&3 >"$d/in" && kill "$(cat "$d/holder")" ) </dev/null >/dev/null 2>&1 &
    feeder=$!
    exec 3<&-
  fi
  idle=0
  while :; do
    done_=0
    [ -e "$d/exit" ] && done_=1
    moved=0
    pump out
    pump err
    if [ $done_ = 1 ]; then
      printf 'X %s\n' "$(cat "$d/exit")"
      break
    fi
    if [ $moved = 0 ]; then
      if ! alive "$d" && [ ! -e "$d/exit" ]; then
        idle=$((idle + 1))
        # The supervisor writes `exit` just after the command ends; give it a moment.
        [ $idle -lt 100 ] || { echo 'X -'; break; }
      fi
      sleep 0.02
    fi
  done
  [ -z "$feeder" ] || kill "$feeder" 2>/dev/null
  exit 0
}

signal() { # id signal
  d=$ROOT/$1
  [ -e "$d/pid" ] || { echo "flankbox: no process $1" >&2; exit 3; }
  [ -e "$d/exit" ] && exit 0
  kill -s "$2" -- "-$(cat "$d/pid")" 2>/dev/null || kill -s "$2" "$(cat "$d/pid")" 2>/dev/null
  exit 0
}

close_stdin() { # id
  d=$ROOT/$1
  [ -e "$d/holder" ] || { echo "flankbox: no process $1" >&2; exit 3; }
  kill "$(cat "$d/holder")" 2>/dev/null
  exit 0
}

case ${1:-} in
  spawn) shift; spawn "$@" ;;
  list) list ;;
  attach) shift; attach "$@" ;;
  signal) shift; signal "$@" ;;
  close-stdin) shift; close_stdin "$@" ;;
  *) echo "flankbox-detached: unknown subcommand ${1:-}" >&2; exit 2 ;;
esac
