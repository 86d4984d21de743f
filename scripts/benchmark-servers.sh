#!/usr/bin/env bash
# benchmark-servers.sh measures Meridian's NTP server beside chronyd's on the
# loopback interface, with `meridian bench` as the load generator for all
# of them, and prints the tables of docs/benchmarks.md.
#
# Servers (all serve the local clock at stratum 10 on 127.0.0.1, no rate
# limiting):
#   m1      Meridian, workers = 1, pinned to SERVER_CPU
#   mall    Meridian, workers = 0 (one per CPU), not pinned
#   chronyd Debian's chronyd 4 (-x: never touches the clock), pinned to SERVER_CPU
#   mx      Meridian, workers = 1, with the XDP fast path (generic mode) on
#           the loopback interface, pinned to SERVER_CPU
# The generator runs with one worker, pinned to GEN_CPU.
#
# As root, everything runs in a network namespace of the script's own,
# whose loopback interface steers the kernel's receive processing to
# SERVER_CPU (receive packet steering): the receive path of every request
# and reply, and the XDP program, run there. Each run then reports two
# costs per reply: the server's process CPU time (--server-pid), and the
# busy time of SERVER_CPU (--server-cpus), which is the server's process,
# the kernel's work for it (or the XDP program instead of it), and the
# receive path of the replies to the generator, which every server pays
# alike. The second is the one that compares a server that answers in
# the kernel with one that answers in a process. Without root there is no
# namespace, no steering, no chronyd (WITH_CHRONYD=0) and no mx.
#
# Measurements, each repeated REPS times with the servers interleaved
# (m1 mall chronyd m1 mall ...):
#   fixed   open loop at FIXED_RATES: server CPU time per reply
#   sweep   open loop at SWEEP_RATES, then refined between each server's
#           sustained rate and the next swept rate. A run passes with loss
#           < 0.1%, nothing skipped and no send error; a rate passes when
#           most of its runs pass; the sustained peak is the highest rate
#           that passes with every swept rate below it passing too.
#   closed  closed loop at each of CONCURRENCY requests outstanding
#   scaling the generator sends from SOURCES addresses (--source-addrs), so
#           that Meridian, which steers each client address to one worker,
#           can spread the load over its workers: open loop at
#           SCALING_RATES (sfixed), then at SCALING_SWEEP (ssweep, same
#           peak criteria, no refinement), placements as above
#   shared  closed loop at SHARED_CONCURRENCY with nothing pinned: every
#           server and the generator (one worker per CPU) on every CPU
#
# Root: chronyd is started as `chronyd -x -d -u root`, with CAP_SYS_TIME
# removed from its bounding set, and `-u root` needs root. Without root,
# run with WITH_CHRONYD=0 to measure Meridian alone.
#
# Usage: scripts/benchmark-servers.sh   (from the repository root; about
# 11 minutes with the defaults on two CPUs)
# Environment (defaults in brackets): REPS [2], DURATION [4s], WARMUP [1s],
# TICK [100us], FIXED_RATES, SWEEP_RATES, CONCURRENCY, SHARED_CONCURRENCY,
# SOURCES [8], SCALING_RATES, SCALING_SWEEP,
# SERVER_CPU [0], GEN_CPU [1], WITH_CHRONYD [1], OUT [a new directory under /tmp, kept;
# its results.jsonl holds every run's report, one JSON object a line].
# TABLES_FROM=FILE only prints the tables from such a results.jsonl
# (REPS and TICK should then be those of that run: they are only printed).

set -euo pipefail

REPS=${REPS:-2}
DURATION=${DURATION:-4s}
WARMUP=${WARMUP:-1s}
TICK=${TICK:-100us}
FIXED_RATES=${FIXED_RATES:-"20000 50000 100000 150000"}
SWEEP_RATES=${SWEEP_RATES:-"50000 100000 200000 300000 400000"}
CONCURRENCY=${CONCURRENCY:-"256"}
SHARED_CONCURRENCY=${SHARED_CONCURRENCY:-"256"}
SOURCES=${SOURCES:-8}
SCALING_RATES=${SCALING_RATES:-"100000 200000"}
SCALING_SWEEP=${SCALING_SWEEP:-"200000 300000 400000 450000"}
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
WITH_CHRONYD=${WITH_CHRONYD:-1}
GEN_CPUS=$GEN_CPU GEN_WORKERS=1
PORT_M1=11231 PORT_MALL=11232 PORT_CHRONYD=11233 PORT_MX=11234

die() { echo "benchmark-servers: $*" >&2; exit 1; }

[[ -f go.mod && -d cmd/meridian ]] || die "run from the repository root"

# PEAK_JQ defines the peak criteria, for the refinement and the tables.
PEAK_JQ='
def pass: .loss_percent < 0.1 and .skipped == 0 and .send_errors == 0;
# spass: the server passed, whatever the generator did (skipped requests).
def spass: .loss_percent < 0.1 and .send_errors == 0;
# sustained: the highest rate passed in most of its runs, every lower one too.
def sustained_by(f): group_by(.rate)
	| map({rate: .[0].rate, ok: (([ .[] | select(f) ] | length) * 2 > length)})
	| reduce .[] as $r ({p: 0, stop: false}; if .stop or ($r.ok | not) then .stop = true else .p = $r.rate end)
	| .p;
def sustained: sustained_by(pass);
'
# SUMMARY turns the array of every run's report into the tables.
SUMMARY='
def med: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
def r(n): if . == null then "–" else (. * pow(10; n) | round) / pow(10; n) | tostring end;
def ms(f; n): [ .[] | f ] as $v | "\($v | med | r(n)) (\($v | min | r(n))–\($v | max | r(n)))";
def k: if . == null then "–" else "\(. / 1000 | r(1))k" end;
def fixedby($e; f):
  . as $all | ($servers | split(" ")) as $srvs |
  "| rate/s | " + ($srvs | join(" | ")) + " |",
  "|---" * ($srvs | length + 1) + "|",
  ( [ $all[] | select(.exp == $e) | .rate ] | unique | sort[] as $rate
    | "| \($rate) | " + ([ $srvs[] as $s | [ $all[] | select(.exp == $e and .srv == $s and .rate == $rate) ]
        | if length == 0 or ([ .[] | f ] | any(. == null)) then "–" else "\(ms(f; 2)) [\([ .[] | .loss_percent ] | med | r(3))%]" end ] | join(" | ")) + " |" );
def fixed($e):
  . as $all | ($servers | split(" ")) as $srvs |
  fixedby($e; .cpu.server_us_per_reply),
  "",
  "Busy time of the server CPU per million replies (s: the server, with the receive path of requests and replies and any XDP program; see the top of the script): median (min–max); median loss in brackets",
  "",
  fixedby($e; .cpu.server_cpus_us_per_reply),
  "",
  "Generator CPU (% of one CPU) at those rates: median",
  "",
  "| rate/s | " + ($srvs | join(" | ")) + " |",
  "|---" * ($srvs | length + 1) + "|",
  ( [ $all[] | select(.exp == $e) | .rate ] | unique | sort[] as $rate
    | "| \($rate) | " + ([ $srvs[] as $s | [ $all[] | select(.exp == $e and .srv == $s and .rate == $rate) | .cpu.generator_percent ] | med | r(0) ] | join(" | ")) + " |" );
def sweep($e):
  . as $all | ($servers | split(" ")) as $srvs |
  "| rate/s | " + ($srvs | join(" | ")) + " |",
  "|---" * ($srvs | length + 1) + "|",
  ( [ $all[] | select(.exp == $e) | .rate ] | unique | sort[] as $rate
    | "| \($rate) | " + ([ $srvs[] as $s | [ $all[] | select(.exp == $e and .srv == $s and .rate == $rate) ]
        | if length == 0 then "–" else "\([ .[] | .loss_percent ] | med | r(3)) (\(length))\(if any(.[]; .skipped > 0 or .send_errors > 0) then "*" else "" end)" end ] | join(" | ")) + " |" );
def peak($e):
  . as $all | ($servers | split(" ")) as $srvs |
  "| server | sustained peak/s | s per million there | server CPU busy, s per million | server CPU % | generator CPU % | highest passing per repetition | sustained, counting server loss only | sweep runs that skipped requests |",
  "|---|---|---|---|---|---|---|---|---|",
  ( $srvs[] as $s
    | [ $all[] | select(.exp == $e and .srv == $s) ] as $runs
    | ($runs | group_by(.rep) | map([ .[] | select(pass) | .rate ] | max // 0)) as $peaks
    | ($runs | sustained) as $p
    | [ $runs[] | select(.rate == $p and pass) ] as $at
    | "| \($s) | \(if $p == 0 then "below \([ $runs[] | .rate ] | min | k)" else ($p | k) end) | \($at | ms(.cpu.server_us_per_reply; 2)) | \(if ($at | length) == 0 or ([ $at[] | .cpu.server_cpus_us_per_reply ] | any(. == null)) then "–" else ($at | ms(.cpu.server_cpus_us_per_reply; 2)) end) | \([ $at[] | .cpu.server_percent ] | med | r(0)) | \([ $at[] | .cpu.generator_percent ] | med | r(0)) | \($peaks | map(k) | join(", ")) | \($runs | sustained_by(spass) | k) | \([ $runs[] | select(.skipped > 0) ] | length) of \($runs | length) |" );
. as $all | ($servers | split(" ")) as $srvs
| "Server CPU time per million replies (s), open loop, tick \($tick), one source address: median (min–max) of \($reps) runs; median loss in brackets",
  "",
  fixed("fixed"),
  "",
  "Open-loop sweep, one source address: median loss % (runs that skipped requests or had send errors marked *)",
  "",
  sweep("sweep"),
  "",
  "Peak rate with loss < 0.1%, one source address. Sustained: the highest rate that passed in most of its runs, with every swept rate below it passing too (at it: server CPU, s per million replies, median (min–max); server and generator CPU %, median). Per repetition: the highest rate that passed in that repetition, whatever happened below it.",
  "",
  peak("sweep"),
  "",
  "Scaling, \($sources) source addresses: server CPU time per million replies (s), median (min–max); median loss in brackets",
  "",
  fixed("sfixed"),
  "",
  "Scaling sweep, \($sources) source addresses: median loss %",
  "",
  sweep("ssweep"),
  "",
  "Peak rate with loss < 0.1%, \($sources) source addresses (as above)",
  "",
  peak("ssweep"),
  "",
  "Closed loop: answered/s median (min–max); median loss %, server CPU % and s per million, server CPU busy s per million, generator CPU % (as above: the placement of the open-loop runs; nothing pinned: every server and the generator, with one worker per CPU, free on every CPU)",
  "",
  "| server | placement | concurrency | answered/s | loss % | server CPU % | s per million | server CPU busy, s per million | generator CPU % |",
  "|---|---|---|---|---|---|---|---|---|",
  ( ("closed", "shared") as $e | [ $all[] | select(.exp == $e) | .concurrency ] | unique | sort[] as $c | $srvs[] as $s
    | [ $all[] | select(.exp == $e and .srv == $s and .concurrency == $c) ] as $runs
    | select($runs | length > 0)
    | "| \($s) | \(if $e == "closed" then "as above" else "nothing pinned" end) | \($c) | \($runs | ms(.answered_per_s / 1000; 1))k | \([ $runs[] | .loss_percent ] | med | r(3)) | \([ $runs[] | .cpu.server_percent ] | med | r(0)) | \([ $runs[] | .cpu.server_us_per_reply ] | med | r(2)) | \([ $runs[] | .cpu.server_cpus_us_per_reply | select(. != null) ] | med | r(2)) | \([ $runs[] | .cpu.generator_percent ] | med | r(0)) |" ),
  "",
  "CPU pressure (some avg10) seen before the runs: median \([ $all[] | .psi_avg10 | select(. != null) ] | med | r(2)), max \([ $all[] | .psi_avg10 | select(. != null) ] | max | r(2))"
'
# print_tables FILE prints the tables from the reports in FILE.
print_tables() {
	local servers
	servers=$(jq -rn '[inputs | .srv] | reduce .[] as $s ([]; if index([$s]) then . else . + [$s] end) | join(" ")' "$1")
	jq -rn --arg servers "$servers" --arg tick "$TICK" --arg reps "$REPS" --arg sources "$SOURCES" \
		"$PEAK_JQ"'[inputs] | '"$SUMMARY" "$1"
}
if [[ -n ${TABLES_FROM:-} ]]; then
	print_tables "$TABLES_FROM"
	exit 0
fi

NETNS=""
if [[ $(id -u) == 0 ]]; then
	NETNS=meridian-bench-$$
fi
NS=()
WITH_XDP=0
if [[ -n $NETNS ]]; then
	NS=(ip netns exec "$NETNS")
	WITH_XDP=1
fi

for tool in go jq taskset; do
	command -v "$tool" >/dev/null || die "$tool is needed"
done
if [[ $WITH_CHRONYD == 1 ]]; then
	command -v chronyd >/dev/null || die "chronyd is not installed (or set WITH_CHRONYD=0)"
	command -v setpriv >/dev/null || die "setpriv is needed to start chronyd without CAP_SYS_TIME"
	# chronyd -u root: only root may keep running as root; any other user
	# would need chronyd's own privilege dropping, which needs root too.
	[[ $(id -u) == 0 ]] || die "chronyd -u root needs root; run as root, or set WITH_CHRONYD=0 to measure Meridian alone"
fi
(( REPS >= 1 && REPS <= 20 )) || die "REPS must be 1-20"
(( SOURCES >= 2 && SOURCES <= 64 )) || die "SOURCES must be 2-64 (at most the 64 sockets)"

OUT=${OUT:-$(mktemp -d /tmp/meridian-bench-results.XXXXXX)}
mkdir -p "$OUT"
TMP=$(mktemp -d /tmp/meridian-bench.XXXXXX)
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
BIN=$TMP/meridian

declare -A PID PORT
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$TMP"
	if [[ -n $NETNS ]]; then
		ip netns del "$NETNS" 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building meridian" >&2
go build -o "$BIN" ./cmd/meridian

if [[ -n $NETNS ]]; then
	# A namespace of its own: its loopback interface is the benchmark's
	# alone, and steering its receive processing changes nothing else.
	ip netns add "$NETNS"
	"${NS[@]}" ip link set lo up
	"${NS[@]}" sh -c "printf '%x' $((1 << SERVER_CPU)) >/sys/class/net/lo/queues/rx-0/rps_cpus"
	echo "network namespace $NETNS, receive processing of lo steered to CPU $SERVER_CPU" >&2
fi

mkdir -p "$TMP/run"
meridian_config() { # workers port
	cat <<-EOF
		[server]
		listen = ["127.0.0.1:$2"]
		workers = $1
		local-stratum = 10

		[server.rate-limit]
		enabled = false

		[log]
		level = "warn"
	EOF
}
meridian_config 1 $PORT_M1 >"$TMP/run/m1.toml"
meridian_config 0 $PORT_MALL >"$TMP/run/mall.toml"
{
	meridian_config 1 $PORT_MX
	printf '\n[server.xdp]\ninterfaces = ["lo"]\nmode = "generic"\n'
} >"$TMP/run/mx.toml"
cat >"$TMP/run/chrony.conf" <<EOF
local stratum 10
port $PORT_CHRONYD
bindaddress 127.0.0.1
cmdport 0
allow 127.0.0.0/8
driftfile $TMP/run/chrony.drift
pidfile $TMP/run/chronyd.pid
EOF

# wait_ready waits (at most 10 s) until the server on port $1 answers.
wait_ready() {
	local i
	for i in $(seq 1 20); do
		if "${NS[@]}" "$BIN" query --timeout 500ms "127.0.0.1:$1" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.5
	done
	die "no answer on 127.0.0.1:$1; see $TMP/run/*.log"
}

# ip netns exec, taskset and setpriv exec what they run, so $! is the
# server's own PID.
SERVERS=(m1 mall)
"${NS[@]}" taskset -c "$SERVER_CPU" "$BIN" daemon --config "$TMP/run/m1.toml" 2>"$TMP/run/m1.log" &
PID[m1]=$! PORT[m1]=$PORT_M1
PIDS+=("$!")
"${NS[@]}" "$BIN" daemon --config "$TMP/run/mall.toml" 2>"$TMP/run/mall.log" &
PID[mall]=$! PORT[mall]=$PORT_MALL
PIDS+=("$!")
if [[ $WITH_CHRONYD == 1 ]]; then
	"${NS[@]}" taskset -c "$SERVER_CPU" setpriv --bounding-set=-sys_time --inh-caps=-sys_time \
		chronyd -x -d -u root -f "$TMP/run/chrony.conf" 2>"$TMP/run/chronyd.log" &
	PID[chronyd]=$! PORT[chronyd]=$PORT_CHRONYD
	PIDS+=("$!")
	SERVERS+=(chronyd)
fi
if [[ $WITH_XDP == 1 ]]; then
	"${NS[@]}" taskset -c "$SERVER_CPU" "$BIN" daemon --config "$TMP/run/mx.toml" 2>"$TMP/run/mx.log" &
	PID[mx]=$! PORT[mx]=$PORT_MX
	PIDS+=("$!")
	SERVERS+=(mx)
fi
for s in "${SERVERS[@]}"; do
	wait_ready "${PORT[$s]}"
done

# quiet_machine waits (at most 30 s) until the CPUs are less than 15% busy
# over a second, so that no other program skews the next round.
quiet_machine() {
	local i a b busy
	for i in $(seq 1 6); do
		a=($(head -1 /proc/stat))
		sleep 1
		b=($(head -1 /proc/stat))
		busy=$(awk -v u1="${a[1]}" -v n1="${a[2]}" -v s1="${a[3]}" -v i1="${a[4]}" -v w1="${a[5]}" \
			-v u2="${b[1]}" -v n2="${b[2]}" -v s2="${b[3]}" -v i2="${b[4]}" -v w2="${b[5]}" \
			'BEGIN { t = (u2+n2+s2+i2+w2) - (u1+n1+s1+i1+w1); print int(100 * (t - (i2-i1) - (w2-w1)) / (t ? t : 1)) }')
		if (( busy < 15 )); then
			return 0
		fi
		echo "machine busy ($busy%), waiting" >&2
		sleep 4
	done
	echo "machine still busy ($busy%); measuring anyway" >&2
}

psi() { awk '/^some/ { sub("avg10=", "", $2); print $2 }' /proc/pressure/cpu 2>/dev/null || echo null; }

# run EXP SERVER REP BENCH-ARGS... runs one bench and appends its report,
# tagged, to $RESULTS. Bounded by the bench's own limits and by timeout.
run() {
	local exp=$1 srv=$2 rep=$3 out
	shift 3
	local cpus=()
	# The busy time of the server CPU means something for the servers
	# confined to it, while they are.
	if [[ -n $NETNS && $srv != mall && $exp != shared ]]; then
		cpus=(--server-cpus "$SERVER_CPU")
	fi
	out=$(timeout 120 "${NS[@]}" taskset -c "$GEN_CPUS" "$BIN" bench --quiet --json --workers "$GEN_WORKERS" \
		--duration "$DURATION" --warmup "$WARMUP" --server-pid "${PID[$srv]}" "${cpus[@]}" "$@" \
		"127.0.0.1:${PORT[$srv]}") || true
	if [[ -z $out ]]; then
		echo "bench against $srv failed: $*" >&2
		return 0
	fi
	jq -c --arg exp "$exp" --arg srv "$srv" --argjson rep "$rep" --arg psi "$(psi)" \
		'. + {exp: $exp, srv: $srv, rep: $rep, psi_avg10: ($psi | tonumber? // null)}' <<<"$out" >>"$RESULTS"
	jq -r '"\(.exp) \(.srv) rep \(.rep) \(if .mode == "open" then "rate \(.rate)" else "concurrency \(.concurrency)" end): \(.answered_per_s | floor)/s loss \(.loss_percent)% server \(.cpu.server_us_per_reply // "?") µs/reply, its CPU busy \(.cpu.server_cpus_us_per_reply // "–") µs/reply gen \(.cpu.generator_percent // 0 | floor)% skipped \(.skipped)"' \
		<<<"$(tail -1 "$RESULTS")" >&2
}

# ok reports whether the last run met the peak criteria.
ok() {
	jq -e '.loss_percent < 0.1 and .skipped == 0 and .send_errors == 0' <<<"$(tail -1 "$RESULTS")" >/dev/null
}

# Per-thread CPU time of the all-workers Meridian, to show which workers served.
thread_cpu() {
	local t
	for t in /proc/"${PID[mall]}"/task/*; do
		awk -v t="${t##*/}" '{ print t, $14 + $15 }' "$t/stat"
	done
}

echo "CPU pressure before the runs: $(head -1 /proc/pressure/cpu 2>/dev/null)" >&2
thread_cpu >"$TMP/threads.before"

# 1. Fixed rates.
for rep in $(seq 1 "$REPS"); do
	for rate in $FIXED_RATES; do
		quiet_machine
		for s in "${SERVERS[@]}"; do
			run fixed "$s" "$rep" --rate "$rate" --tick "$TICK"
		done
	done
done

thread_cpu >"$TMP/threads.after"

# sweep EXP RATES BENCH-ARGS...: a coarse sweep, in which a server stops
# climbing in a repetition after two failures in a row.
declare -A FAILS
sweep() {
	local exp=$1 rates=$2 rep rate s
	shift 2
	for rep in $(seq 1 "$REPS"); do
		for s in "${SERVERS[@]}"; do FAILS[$s]=0; done
		for rate in $rates; do
			quiet_machine
			for s in "${SERVERS[@]}"; do
				(( FAILS[$s] < 2 )) || continue
				run "$exp" "$s" "$rep" --rate "$rate" --tick "$TICK" "$@"
				if ok; then FAILS[$s]=0; else FAILS[$s]=$((FAILS[$s] + 1)); fi
			done
		done
	done
}

# 2. Sweep, then refinement.
sweep sweep "$SWEEP_RATES"

# Refinement: three rates between each server's sustained coarse peak and
# the next coarse rate above it.
declare -A REFINE
for s in "${SERVERS[@]}"; do
	REFINE[$s]=$(jq -rs --arg srv "$s" --arg rates "$SWEEP_RATES" "$PEAK_JQ"'
		($rates | split(" ") | map(select(. != "") | tonumber)) as $all
		| [ .[] | select(.exp == "sweep" and .srv == $srv) ] | sustained
		| . as $p
		| ([ $all[] | select(. > $p) ] | min // ($p + 50000)) as $next
		| [1, 2, 3] | map($p + ($next - $p) * . / 4 | floor) | map(tostring) | join(" ")' "$RESULTS")
done
for rep in $(seq 1 "$REPS"); do
	for k in 0 1 2; do
		quiet_machine
		for s in "${SERVERS[@]}"; do
			read -ra rates <<<"${REFINE[$s]}"
			run sweep "$s" "$rep" --rate "${rates[$k]}" --tick "$TICK"
		done
	done
done

# 3. Scaling: several source addresses.
thread_cpu >"$TMP/threads.sbefore"
for rep in $(seq 1 "$REPS"); do
	for rate in $SCALING_RATES; do
		quiet_machine
		for s in "${SERVERS[@]}"; do
			run sfixed "$s" "$rep" --rate "$rate" --tick "$TICK" --source-addrs "$SOURCES"
		done
	done
done
thread_cpu >"$TMP/threads.safter"
sweep ssweep "$SCALING_SWEEP" --source-addrs "$SOURCES"

# 4. Closed loop.
for rep in $(seq 1 "$REPS"); do
	for c in $CONCURRENCY; do
		quiet_machine
		for s in "${SERVERS[@]}"; do
			run closed "$s" "$rep" --concurrency "$c"
		done
	done
done

# 5. Nothing pinned.
ALL_CPUS=0-$(($(nproc) - 1))
for s in "${SERVERS[@]}"; do
	taskset -a -p -c "$ALL_CPUS" "${PID[$s]}" >/dev/null
done
GEN_CPUS=$ALL_CPUS GEN_WORKERS=$(nproc)
for rep in $(seq 1 "$REPS"); do
	for c in $SHARED_CONCURRENCY; do
		quiet_machine
		for s in "${SERVERS[@]}"; do
			run shared "$s" "$rep" --concurrency "$c"
		done
	done
done

echo "CPU pressure after the runs: $(head -1 /proc/pressure/cpu 2>/dev/null)" >&2

echo
echo "meridian bench, one worker on CPU $GEN_CPU (except shared runs); m1, chronyd and mx on CPU $SERVER_CPU; mall on every CPU; $DURATION after $WARMUP warmup${NETNS:+; in a network namespace, receive processing steered to CPU $SERVER_CPU}"
echo
print_tables "$RESULTS"
echo
echo "CPU time (s) of each thread of mall during the fixed-rate runs (tid: seconds, threads over 0.05 s):"
join <(sort "$TMP/threads.before") <(sort "$TMP/threads.after") |
	awk -v hz="$(getconf CLK_TCK)" '{ d = ($3 - $2) / hz; if (d > 0.05) printf "  %s: %.2f\n", $1, d }'
echo "The same during the fixed-rate runs from $SOURCES source addresses:"
join <(sort "$TMP/threads.sbefore") <(sort "$TMP/threads.safter") |
	awk -v hz="$(getconf CLK_TCK)" '{ d = ($3 - $2) / hz; if (d > 0.05) printf "  %s: %.2f\n", $1, d }'
echo
echo "Every run's report: $RESULTS"
