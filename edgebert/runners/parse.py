"""Read what the measuring tools print: TFLite's benchmark_model, onnxruntime_perf_test, and
edgebert's own bench script (one JSON line).

benchmark_model's format, from its source (LiteRT `tflite/tools/benchmark/benchmark_model.cc`,
`tools/logging.h`, `tool_params.h`; TensorFlow `tensorflow/lite/tools/benchmark/...` before):
every log line starts with "INFO: " (older builds print none); flags that were set are echoed
as "<Description>: [value]"; each of the warm-up and timed phases ends with one statistics line
"count=N first=.. curr=.. min=.. max=.. avg=.. std=.." (integers in microseconds, avg a
double), to which current builds append " p5=.. median=.. p95=.."; at the end comes
"Inference timings in us: Init: .., First inference: .., Warmup (avg): .., Inference (avg): .."
and, where supported, "Memory footprint delta from the start of the tool (MB): init=.. overall=.."
and "Overall peak memory footprint (MB) via periodic monitoring: ..".
"""

from __future__ import annotations

import json
import re

__all__ = [
    "parse_benchmark_model",
    "parse_perf_test",
    "parse_script_output",
    "parse_thermalservice",
    "parse_sys_thermal",
    "THERMAL_MARK",
    "OutputFormatError",
]


class OutputFormatError(ValueError):
    """The tool's output lacks the lines a finished run prints (it crashed or is not that tool)."""


_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PREFIX = r"^(?:[A-Z]+: )?"  # "INFO: " in current builds; Android logcat/older builds differ
_TIMINGS = re.compile(
    _PREFIX + rf"Inference timings in us: Init: (?P<init>{_NUM}), First inference: (?P<first>{_NUM}), "
    rf"Warmup \(avg\): (?P<warmup>{_NUM}), Inference \(avg\): (?P<avg>{_NUM})",
    re.M,
)
# TensorFlow before 2.3 printed this instead (see the TF Lite performance/measurement docs).
_LEGACY_TIMINGS = re.compile(
    rf"Average inference timings in us: Warmup: (?P<warmup>{_NUM}), Init: (?P<init>{_NUM}), "
    rf"(?:Inference|no stats): (?P<avg>{_NUM})",
    re.M,
)
_STAT_LINE = re.compile(_PREFIX + r"(?:Timings \(microseconds\): )?((?:count|curr)=\d+.*)$", re.M)
_PAIR = re.compile(rf"(\w+)=({_NUM})")
_PARAM = re.compile(_PREFIX + r"(?P<name>[^:\n\[\]]+): \[(?P<value>[^\]\n]*)\]\s*$", re.M)
_MEM_DELTA = re.compile(
    rf"Memory footprint delta from the start of the tool \(MB\): init=(?P<init>{_NUM}) "
    rf"overall=(?P<overall>{_NUM})"
)
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: (?P<peak>{_NUM})")


def _stat(line: str) -> dict:
    """One statistics line as numbers; the all-same form "count=N curr=X" fills min/max/std."""
    d = {k: float(v) for k, v in _PAIR.findall(line)}
    if "min" not in d and "curr" in d:  # Stat::OutputToStream when every value was the same
        d.update(min=d["curr"], max=d["curr"], avg=d["curr"], std=0.0, first=d.get("first", d["curr"]))
    return d


def parse_benchmark_model(text: str) -> dict:
    """Figures from one benchmark_model run, in microseconds / MB as printed, plus the echoed flags.

    Keys: init_us, first_us, warmup_avg_us, avg_us, warmup (stat dict or None), timed (stat dict
    or None), mem_init_mb, mem_overall_mb, peak_mb, params ({description: value}).
    Raises OutputFormatError when the final timings line is missing.
    """
    m = _TIMINGS.search(text)
    legacy = m is None
    if legacy:
        m = _LEGACY_TIMINGS.search(text)
    if m is None:
        raise OutputFormatError("no 'Inference timings in us:' line: the benchmark did not finish")
    stats = [_stat(s) for s in _STAT_LINE.findall(text)]
    out = {
        "init_us": float(m["init"]),
        "first_us": None if legacy else float(m["first"]),
        "warmup_avg_us": float(m["warmup"]),
        "avg_us": float(m["avg"]),
        # Warm-up's line comes first, the timed runs' second (legacy tools add per-op tables too).
        "warmup": stats[0] if len(stats) >= 2 else None,
        "timed": stats[-1] if stats else None,
        "mem_init_mb": None,
        "mem_overall_mb": None,
        "peak_mb": None,
        "params": {p["name"].strip(): p["value"] for p in _PARAM.finditer(text)},
    }
    if d := _MEM_DELTA.search(text):
        out["mem_init_mb"], out["mem_overall_mb"] = float(d["init"]), float(d["overall"])
    if p := _PEAK.search(text):
        out["peak_mb"] = float(p["peak"])
    return out


# onnxruntime_perf_test (onnxruntime/test/perftest/performance_runner.cc) prints, e.g.:
#   Session creation time cost: 0.217932 s / First inference time cost: 196 ms /
#   Total inference requests: 5 / Average inference time cost[ total]: 98.96 ms /
#   Peak working set size: 271122432 bytes / P50 Latency: 0.0995086 s / ... / Min Latency / Max Latency
_PERF = {
    "session_s": rf"Session creation time cost: ({_NUM}) s",
    "first_ms": rf"First inference time cost: ({_NUM}) ms",
    "requests": r"Total inference requests: (\d+)",
    "avg_ms": rf"Average inference time cost(?: total)?: ({_NUM}) ms",
    "total_s": rf"Total inference time cost: ({_NUM}) s",
    "peak_bytes": r"Peak working set size: (\d+) bytes",
    "min_s": rf"Min Latency: ({_NUM}) s",
    "max_s": rf"Max Latency: ({_NUM}) s",
    "p50_s": rf"P50 Latency: ({_NUM}) s",
    "p90_s": rf"P90 Latency: ({_NUM}) s",
    "p95_s": rf"P95 Latency: ({_NUM}) s",
}


def parse_perf_test(text: str) -> dict:
    out = {}
    for key, pattern in _PERF.items():
        m = re.search(pattern, text)
        out[key] = float(m.group(1)) if m else None
    if out["avg_ms"] is None or out["requests"] is None:
        raise OutputFormatError("no 'Average inference time cost' line: onnxruntime_perf_test did not finish")
    return out


def parse_script_output(stdout: str) -> dict:
    """The bench script's JSON line (the last line that parses as a JSON object)."""
    for line in reversed((stdout or "").strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise OutputFormatError("the bench script printed no JSON result line")


# `adb shell dumpsys thermalservice` (frameworks/base ThermalManagerService.dump), e.g.:
#   Thermal Status: 0
#   Cached temperatures:
#   \tTemperature{mValue=38.1, mType=0, mName=AP, mStatus=0}
#   HAL Ready: true
#   HAL connection:
#   \tThermalHAL 2.0 connected: yes
#   Current temperatures from HAL:
#   \tTemperature{mValue=44.8, mType=0, mName=AP, mStatus=0}
#   Current cooling devices from HAL:
#   \tCoolingDevice{mValue=0, mType=2, mName=battery}
# Status is PowerManager's THERMAL_STATUS_* (0 none, 1 light, 2 moderate, 3 severe, 4 critical,
# 5 emergency, 6 shutdown).
_TEMPERATURE = re.compile(rf"Temperature\{{mValue=(?P<value>{_NUM}), mType=(?P<type>-?\d+), mName=(?P<name>[^,}}]*)")
_THERMAL_STATUS = re.compile(r"^Thermal Status: (\d+)\s*$", re.M)


def parse_thermalservice(text: str) -> dict | None:
    """{"source", "status", "max_c", "zones": {name: C}} from `dumpsys thermalservice`; None when it shows none.

    The HAL's current readings when present (the cached ones can be minutes old), else the cached ones.
    """
    current = text.split("Current temperatures from HAL:", 1)
    section = current[1].split("Current cooling devices from HAL:", 1)[0] if len(current) == 2 else ""
    found = _TEMPERATURE.findall(section) or _TEMPERATURE.findall(text.split("HAL Ready:", 1)[0])
    zones = {name.strip(): float(value) for value, _type, name in found}
    if not zones:
        return None
    status = _THERMAL_STATUS.search(text)
    return {
        "source": "dumpsys thermalservice",
        "status": int(status.group(1)) if status else None,
        "max_c": max(zones.values()),
        "zones": zones,
    }


# Linux thermal zones read by a shell over ssh (runners/ssh.py), one line per readable zone:
#   @edgebert-thermal before thermal_zone0 45000 cpu-thermal
# (phase, zone, millidegrees C, the zone's type, which may hold spaces or be empty).
THERMAL_MARK = "@edgebert-thermal"
_ZONE_LINE = re.compile(rf"^{THERMAL_MARK} (?P<phase>\w+) (?P<zone>\S+) (?P<milli>-?\d+)(?: (?P<kind>.*))?$")


def parse_sys_thermal(text: str, phase: str, source: str = "/sys/class/thermal") -> dict | None:
    """{"source", "max_c", "zones": {type: C}} from the `phase` lines, the same form as the bench script's
    read_thermal (a zone's type names it; a repeated type adds the zone); None when no zone was readable."""
    zones: dict[str, float] = {}
    for line in text.splitlines():
        m = _ZONE_LINE.match(line.strip())
        if not m or m["phase"] != phase:
            continue
        kind = (m["kind"] or "").strip() or m["zone"]
        zones[kind if kind not in zones else f"{kind} ({m['zone']})"] = int(m["milli"]) / 1000.0
    if not zones:
        return None
    return {"source": source, "max_c": max(zones.values()), "zones": zones}
