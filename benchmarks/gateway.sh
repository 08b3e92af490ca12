#!/usr/bin/env bash
# gateway.sh measures requests/s and p50/p99 latency on loopback, with
# keep-alive, through: a bare httputil.ReverseProxy (with a pool of copy
# buffers as the gateway has, the reference; and as ReverseProxy is by
# default, allocating a 32 KiB buffer per request); the gateway with
# routing only; the gateway with routing + JWT + rate limit + breaker +
# retry (no-op telemetry) with its defaults, which cache the tokens that
# verified ("full"); the same verifying every token ("full-nocache");
# "full" verifying RS256 tokens from a key set of two keys, with the
# cache and without ("full-rs256", "full-rs256-nocache", sent an RS256
# token of their own); "full" with the OTel SDK; Caddy's
# reverse_proxy; nginx's proxy_pass with upstream keep-alive; and, as the
# floor, the upstream itself with no proxy. Every proxy sends to the same
# upstream, a small Go server answering a 39-byte JSON body, and every
# target runs as its own process (see cmd/gwbench).
#
# Load: wrk, closed loop, CONNS connections (64) on THREADS threads (1),
# DURATION (10s) per sample, the same Authorization header to every
# target but the RS256 variants. ROUNDS rounds (5) each take every
# target once, in an order rotated each round, so that a change of the
# machine's load weighs on every target alike; the table gives medians,
# and the ratios to the bare proxy are medians of per-round ratios. Each sample also records the CPU
# time the target's processes spent (from /proc/PID/stat, nginx's workers
# included) per request: on a machine shared with other jobs it moves
# much less than requests/s does.
#
# Then, for latency without saturation, ROUNDS rounds of a fixed-rate
# (open-loop) load from gwbench -load: RATE (1000) requests/s for
# LAT_DURATION (6s) per target; RATE=0 skips them. For the Go proxies the
# load goes to a second process of each, started with gwbench -timed,
# which also measures inside the process each request's time in the
# proxy less the upstream's round trip: what the proxy itself adds,
# without the load generator's, the network's and the upstream's
# scheduling noise (bare's own p99 end to end moves by milliseconds
# between rounds on a 2-core VM). Caddy and nginx have only the figures
# from outside.
#
# To see what one layer of the full chain costs, the variants
# routing-breaker, routing-retry, routing-limit and routing-jwt are
# routing with that layer alone (not in the default TARGETS).
#
# To compare a change with the code before it in the same run, BASE=REV
# builds gwbench from the repository at git revision REV as well, and a
# target VARIANT@base runs that build's VARIANT: TARGETS="bare full
# full@base" BASE=main.
#
# PAIRED=1 with two TARGETS loads both at once in each round, CONNS/2
# connections each, instead of one after the other, so that the ratio
# of their CPU time per request is read off the same moments of the
# machine. The median of 8 rounds on a 2-core VM is then good to about
# ±2% (two processes of one variant read 1.00× and 1.02×), where one
# after the other it moves by ±5%. The table compares the second target with the
# first. Their requests/s are each one's share of the machine, not what
# either would serve alone. Use it to weigh a change (TARGETS="routing
# routing@base" BASE=main PAIRED=1 RATE=0) or what the gateway costs
# over the bare proxy in CPU.
#
# Usage: ./gateway.sh            # everything, about 16 minutes
#        ROUNDS=3 DURATION=5s TARGETS="bare routing caddy" ./gateway.sh
#        PROFILE="bare full" ./gateway.sh   # also writes CPU profiles of those variants
#        BASE=main TARGETS="bare full full@base" ./gateway.sh
#        PAIRED=1 RATE=0 ROUNDS=8 TARGETS="bare routing" ./gateway.sh
# It installs what is missing: wrk and nginx with apt-get, Caddy with go
# install (from the module proxy, into a temporary GOBIN; CADDY=path skips
# the build). It prints the table on stdout, and keeps the raw samples and
# wrk outputs in a temporary directory whose name it prints.
set -euo pipefail
cd "$(dirname "$0")"
# The braces make bash read the whole script before it runs any of it.
{

rounds=${ROUNDS:-5}
duration=${DURATION:-10s}
conns=${CONNS:-64}
threads=${THREADS:-1}
targets=${TARGETS:-direct bare-nopool bare routing full full-nocache full-rs256 full-otel caddy nginx}
caddy_version=${CADDY_VERSION:-v2.11.9}
rate=${RATE:-1000}
lat_duration=${LAT_DURATION:-6s}
if [[ -n ${PAIRED:-} ]] && (($(wc -w <<<"$targets") != 2)); then
	echo "PAIRED=1 needs two TARGETS, not \"$targets\"" >&2
	exit 1
fi
work=$(mktemp -d -t otelpatterns-gwbench.XXXXXX)
echo "# working in $work" >&2

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

need() { [[ " $targets " == *" $1 "* ]]; }

# Tools.
apt_updated=
apt_install() {
	if [[ -z $apt_updated ]]; then apt-get update -qq >&2; apt_updated=1; fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}
command -v wrk >/dev/null || apt_install wrk
command -v curl >/dev/null || apt_install curl
if need nginx && ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then apt_install nginx; fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
caddy_bin=${CADDY:-}
if need caddy && [[ -z $caddy_bin ]]; then
	caddy_bin=$(command -v caddy || true)
	if [[ -z $caddy_bin ]]; then
		echo "# building Caddy $caddy_version (a couple of minutes)" >&2
		GOBIN=$work/bin go install "github.com/caddyserver/caddy/v2/cmd/caddy@$caddy_version" >&2
		caddy_bin=$work/bin/caddy
	fi
fi

go build -o "$work/gwbench" ./cmd/gwbench
gwbench=$work/gwbench
if [[ " $targets " == *@base* ]]; then
	if [[ -z ${BASE:-} ]]; then
		echo "a target VARIANT@base needs BASE=REV" >&2
		exit 1
	fi
	echo "# building gwbench at $BASE" >&2
	mkdir "$work/base"
	git -C .. archive "$BASE" | tar -x -C "$work/base"
	(cd "$work/base/benchmarks" && go build -o "$work/gwbench-base" ./cmd/gwbench)
fi

# start_go NAME ARGS... starts a gwbench server (the BASE build's for a
# NAME with @base: VARIANT@base, VARIANT@base+timed) and sets port[NAME]
# from the "listening on" line it prints.
declare -A port tpid
start_go() {
	local name=$1 bin=$gwbench
	shift
	if [[ $name == *@base* ]]; then bin=$work/gwbench-base; fi
	"$bin" "$@" >"$work/$name.out" 2>"$work/$name.err" &
	pids+=($!)
	tpid[$name]=$!
	for _ in $(seq 100); do
		if grep -q '^listening on ' "$work/$name.out" 2>/dev/null; then
			port[$name]=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$work/$name.out")
			return
		fi
		sleep 0.1
	done
	echo "$name did not start:" >&2
	cat "$work/$name.err" >&2
	exit 1
}

wait_port() {
	for _ in $(seq 100); do
		if (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return; fi
		sleep 0.1
	done
	echo "nothing listens on port $1" >&2
	exit 1
}

# has_timed NAME says whether the gwbench build that runs NAME has
# -timed (a BASE build from before it has not).
has_timed() {
	local bin=$gwbench
	if [[ $1 == *@base* ]]; then bin=$work/gwbench-base; fi
	[[ $("$bin" -h 2>&1 || true) == *-timed* ]]
}

start_go upstream -serve upstream
upstream=http://127.0.0.1:${port[upstream]}
port[direct]=${port[upstream]}
tpid[direct]=${tpid[upstream]}
for v in $targets; do
	case ${v%@base} in
	direct | caddy | nginx) continue ;;
	esac
	prof=()
	if [[ " ${PROFILE:-} " == *" $v "* ]]; then prof=(-cpuprofile "$work/$v.pprof"); fi
	start_go "$v" -serve "${v%@base}" -upstream "$upstream" "${prof[@]}"
	# A second process of each variant, measuring its own time per
	# request (gwbench -timed), serves the fixed-rate load: a BASE
	# build's too, when it has -timed, so that VARIANT and VARIANT@base
	# are measured alike from outside as well.
	if [[ $rate != 0 ]]; then
		if has_timed "$v"; then
			start_go "$v+timed" -serve "${v%@base}" -timed -upstream "$upstream"
		else
			echo "# $v: the BASE build has no -timed: its fixed-rate latency is an untimed process's, the others' a timed one's" >&2
		fi
	fi
done

if need caddy; then
	port[caddy]=$("$gwbench" -free-port)
	# Upstream keep-alive is Caddy's default; its idle pool is raised to the
	# gateway's 256 per host. No access log (Caddy's default).
	cat >"$work/Caddyfile" <<CADDY
{
	admin off
	auto_https off
	persist_config off
}
http://127.0.0.1:${port[caddy]} {
	reverse_proxy 127.0.0.1:${port[upstream]} {
		transport http {
			keepalive 90s
			keepalive_idle_conns_per_host 256
		}
	}
}
CADDY
	XDG_DATA_HOME=$work/caddy XDG_CONFIG_HOME=$work/caddy \
		"$caddy_bin" run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.out" 2>&1 &
	pids+=($!)
	tpid[caddy]=$!
	wait_port "${port[caddy]}"
fi

if need nginx; then
	port[nginx]=$("$gwbench" -free-port)
	mkdir -p "$work/nginx/logs"
	# One worker per core; keep-alive to the upstream (off by default in
	# nginx: proxy_http_version 1.1, an empty Connection header and an
	# upstream keepalive pool), no per-connection request cap on either
	# side, no access log.
	cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes auto;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $work/nginx/body;
	proxy_temp_path $work/nginx/proxy;
	fastcgi_temp_path $work/nginx/fastcgi;
	uwsgi_temp_path $work/nginx/uwsgi;
	scgi_temp_path $work/nginx/scgi;
	keepalive_requests 100000000;
	upstream up {
		server 127.0.0.1:${port[upstream]};
		keepalive 256;
		keepalive_requests 100000000;
	}
	server {
		listen 127.0.0.1:${port[nginx]};
		location / {
			proxy_pass http://up;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
NGINX
	"$nginx_bin" -p "$work/nginx" -c "$work/nginx/nginx.conf" >"$work/nginx.out" 2>&1 &
	pids+=($!)
	tpid[nginx]=$!
	wait_port "${port[nginx]}"
fi

# The token each target is sent: the full variants' (HS256), or for the
# RS256 variants theirs.
declare -A token
for t in $targets; do
	case ${t%@base} in
	full-rs256*) token[$t]=$("$gwbench" -token -serve "${t%@base}") ;;
	*) token[$t]=$("$gwbench" -token) ;;
	esac
done
path=/api/items/42

# Every target answers the request before any is measured.
for t in $targets; do
	for p in ${port[$t]} ${port[$t+timed]:-}; do
		code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${token[$t]}" "http://127.0.0.1:$p$path" || true)
		if [[ $code != 200 ]]; then
			echo "$t answered $code, not 200" >&2
			exit 1
		fi
	done
done

# to_us turns a wrk duration (812.00us, 1.23ms, 2.00s) into microseconds.
to_us() {
	awk -v d="$1" 'BEGIN {
		if (d ~ /us$/) { sub(/us$/, "", d); print d + 0 }
		else if (d ~ /ms$/) { sub(/ms$/, "", d); print d * 1000 }
		else if (d ~ /m$/) { sub(/m$/, "", d); print d * 60000000 }
		else { sub(/s$/, "", d); print d * 1000000 }
	}'
}

# cpu_ticks PID prints the CPU time (user + system, in clock ticks) used
# so far by the process PID and its children's processes (nginx's workers).
cpu_ticks() {
	local total=0 p
	for p in "$1" $(pgrep -P "$1" || true); do
		total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	echo "$total"
}
hz=$(getconf CLK_TCK)

# measure ROUND TARGET runs wrk once and appends a sample: requests/s,
# p50 and p99 (µs), and the CPU time the target's processes spent per
# request (µs), which depends less on what else the machine runs.
measure() {
	local round=$1 t=$2 out=$work/wrk-$1-$2.txt before after
	before=$(cpu_ticks "${tpid[$t]}")
	wrk -t"$threads" -c"$conns" -d"$duration" --latency -H "Authorization: Bearer ${token[$t]}" \
		"http://127.0.0.1:${port[$t]}$path" >"$out"
	if grep -q -e 'Non-2xx' -e 'Socket errors' "$out"; then
		echo "round $round, $t: errors:" >&2
		grep -e 'Non-2xx' -e 'Socket errors' "$out" >&2
	fi
	after=$(cpu_ticks "${tpid[$t]}")
	local rps p50 p99 reqs cpu
	rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
	p50=$(to_us "$(awk '$1 == "50%" {print $2}' "$out")")
	p99=$(to_us "$(awk '$1 == "99%" {print $2}' "$out")")
	reqs=$(awk '/ requests in / {print $1}' "$out")
	cpu=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$reqs" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
	echo "$round $t $rps $p50 $p99 $cpu" | tee -a "$work/samples.txt" >&2
}

# A short warm-up of each (connection pools, the Go runtime's heap),
# and of each timed process, which serves the fixed-rate load alone.
for t in $targets; do
	for p in ${port[$t]} ${port[$t+timed]:-}; do
		wrk -t"$threads" -c"$conns" -d2s -H "Authorization: Bearer ${token[$t]}" "http://127.0.0.1:$p$path" >/dev/null
	done
done

# measure_pair ROUND A B loads A and B at once, half the connections
# each, and appends a sample of each as measure does. Both see the same
# machine at the same moment, so the ratio of their CPU time per request
# moves much less from round to round than that of two samples taken one
# after the other; their requests/s are each one's share of a machine
# they both load. The target started first alternates by round.
measure_pair() {
	local round=$1 a=$2 b=$3 t first second loads=()
	declare -A before after
	for t in "$a" "$b"; do before[$t]=$(cpu_ticks "${tpid[$t]}"); done
	first=$a second=$b
	if ((round % 2 == 0)); then first=$b second=$a; fi
	for t in "$first" "$second"; do
		wrk -t"$threads" -c"$((conns / 2))" -d"$duration" --latency -H "Authorization: Bearer ${token[$t]}" \
			"http://127.0.0.1:${port[$t]}$path" >"$work/wrk-$round-$t.txt" &
		loads+=($!)
	done
	wait "${loads[@]}"
	for t in "$a" "$b"; do after[$t]=$(cpu_ticks "${tpid[$t]}"); done
	local out rps p50 p99 reqs cpu
	for t in "$a" "$b"; do
		out=$work/wrk-$round-$t.txt
		if grep -q -e 'Non-2xx' -e 'Socket errors' "$out"; then
			echo "round $round, $t: errors:" >&2
			grep -e 'Non-2xx' -e 'Socket errors' "$out" >&2
		fi
		rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
		p50=$(to_us "$(awk '$1 == "50%" {print $2}' "$out")")
		p99=$(to_us "$(awk '$1 == "99%" {print $2}' "$out")")
		reqs=$(awk '/ requests in / {print $1}' "$out")
		cpu=$(awk -v t=$((after[$t] - before[$t])) -v hz="$hz" -v n="$reqs" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
		echo "$round $t $rps $p50 $p99 $cpu" | tee -a "$work/samples.txt" >&2
	done
}

echo "# round target requests/s p50µs p99µs cpuµs/request" >"$work/samples.txt"
read -r -a list <<<"$targets"
n=${#list[@]}
if [[ -n ${PAIRED:-} ]]; then
	for ((r = 1; r <= rounds; r++)); do
		measure_pair "$r" "${list[0]}" "${list[1]}"
	done
else
	for ((r = 1; r <= rounds; r++)); do
		for ((i = 0; i < n; i++)); do
			measure "$r" "${list[$(((i + r - 1) % n))]}"
		done
	done
fi

# Latency at a fixed rate, well below any target's saturation: gwbench
# -load sends RATE requests a second (open loop) over up to 32
# connections, and measures each request both from when it was due
# (latency.txt) and from when it was sent (sent.txt). The first also
# holds how late the generator's own sleeps end, a millisecond or more at
# p99 on a busy VM whatever the target; the second is what a proxy adds.
if [[ $rate != 0 ]]; then
	echo "# round target rate p50µs p99µs (from when due)" >"$work/latency.txt"
	echo "# round target rate p50µs p99µs (from when sent)" >"$work/sent.txt"
	echo "# round target requests p50µs p99µs (the proxy's own time, in process)" >"$work/own.txt"
	for ((r = 1; r <= rounds; r++)); do
		for ((i = 0; i < n; i++)); do
			t=${list[$(((i + r - 1) % n))]}
			# A Go variant's timed process, whose own figures are read
			# (and so started again) before and after the load.
			p=${port[$t+timed]:-${port[$t]}}
			if [[ -n ${port[$t+timed]:-} ]]; then curl -s -o /dev/null "http://127.0.0.1:$p/_gwbench/timing"; fi
			read -r lrate p50 p99 sp50 sp99 < <("$gwbench" -load "http://127.0.0.1:$p$path" -rate "$rate" \
				-duration "$lat_duration" -workers 32 -H "Authorization: Bearer ${token[$t]}")
			echo "$r $t $lrate $p50 $p99" >>"$work/latency.txt"
			echo "$r $t $lrate $sp50 $sp99" >>"$work/sent.txt"
			own=
			if [[ -n ${port[$t+timed]:-} ]]; then
				read -r on op50 op99 < <(curl -s "http://127.0.0.1:$p/_gwbench/timing")
				echo "$r $t $on $op50 $op99" >>"$work/own.txt"
				own=", own: $op50 $op99"
			fi
			echo "$r $t $lrate due: $p50 $p99, sent: $sp50 $sp99$own" >&2
		done
	done
fi

{
	echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3-4)"
	if [[ -n ${PAIRED:-} ]]; then
		echo "Paired: both targets loaded at once in each round, wrk -t$threads -c$((conns / 2)) -d$duration --latency each; $rounds rounds; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
		echo "Requests/s are each one's share of the machine: compare CPU/request."
	else
		echo "wrk -t$threads -c$conns -d$duration --latency; $rounds rounds; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
	fi
	if need caddy; then echo "Caddy: $(go version -m "$caddy_bin" | awk '$1 == "mod" {print $3}')"; fi
	if need nginx; then echo "nginx: $("$nginx_bin" -v 2>&1 | cut -d/ -f2)"; fi
	echo
	if [[ -n ${PAIRED:-} ]]; then
		# The targets are about requests/s served alone: not measured here.
		"$gwbench" -report "$work/samples.txt" -ref "${list[0]}" | sed '/^Targets (issue 15/,$d'
	else
		"$gwbench" -report "$work/samples.txt" -ref bare
	fi
	if [[ $rate != 0 ]]; then
		echo
		echo "Latency at $rate requests/s (open loop, $lat_duration per sample, gwbench -load), from when each request was sent:"
		echo
		"$gwbench" -report "$work/sent.txt" -latency -ref bare
		echo
		echo "The same samples from when each request was due (adds the load generator's timer lateness):"
		echo
		"$gwbench" -report "$work/latency.txt" -latency -ref bare
		if grep -q '^[0-9]' "$work/own.txt"; then
			echo
			echo "The same requests' time in each Go proxy's own process (gwbench -timed): from its handler's start to its end, less the upstream's round trips:"
			echo
			"$gwbench" -report "$work/own.txt" -latency -ref bare
		fi
	fi
} | tee "$work/table.md"
echo "# samples, wrk outputs and table in $work" >&2
exit
}
