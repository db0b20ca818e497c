"""Can an app run this .onnx with ONNX Runtime Mobile, and with which package? Proved by converting it.

ORT Mobile runs ORT-format (.ort) files. The file is converted with ONNX Runtime's own tool
(`python -m onnxruntime.tools.convert_onnx_models_to_ort`, Fixed optimisation style, target platform arm),
the .ort is loaded back in onnxruntime and checked against PyTorch on the parity sentences (the full
packages, onnxruntime-android and onnxruntime-c/objc, run it the same way), and the kernels the conversion
says it needs (its required_operators.config, the file a custom build takes with --include_ops_by_config)
are compared with the op set of the reduced pre-built package, onnxruntime-mobile (last released as
1.18.0): mobile_package.required_operators.config, shipped in the onnxruntime 1.15-1.18 wheels, read from the
isolated onnxruntime venv (export/isolated.py). A kernel is in that package when its domain lists the op and
the op's version is at most the package's highest opset (an op unchanged since an older opset keeps its
kernel); tensors must be of the package's global types (int32/int64 are kept for shapes and indices).

What an accelerator would take: ONNX Runtime's own usability checker (the code behind
`python -m onnxruntime.tools.check_onnx_model_mobile_usability`) partitions the basic-optimised graph for the
NNAPI (Android) and CoreML ML Program (iOS) execution providers: more than two partitions, and ORT itself
recommends the CPU EP (device copies between partitions outweigh the NPU).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path

from edgebert.errors import RunnerError
from edgebert.export.isolated import ISOLATED, IsolatedSession, isolated_python

__all__ = ["ort_mobile", "parse_operator_config", "missing_kernels", "accelerator_partitions", "PACKAGE_RUNTIMES"]

# Any onnxruntime wheel from 1.15 to 1.18 holds the reduced package's op set (identical in 1.15.0 and 1.18.0).
PACKAGE_RUNTIMES = ("onnxruntime==1.18.0", "onnxruntime==1.15.0")
_INDEX_TYPES = {"int32_t", "int64_t"}
_ONNX_TYPES = {
    1: "float",
    2: "uint8_t",
    3: "int8_t",
    6: "int32_t",
    7: "int64_t",
    9: "bool",
    10: "MLFloat16",
    11: "double",
}


def parse_operator_config(text: str) -> dict:
    """{"ops": {domain: {op: [opsets]}}, "types": [global types]} of a reduced-build operator config."""
    ops: dict[str, dict[str, set[int]]] = {}
    types: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("!globally_allowed_types;"):
            types = line.split(";", 1)[1].split(",")
        elif line and not line.startswith("!"):
            domain, opsets, names = line.split(";")[:3]
            for op in names.split(","):
                ops.setdefault(domain, {}).setdefault(op.split("{")[0], set()).update(int(v) for v in opsets.split(","))
    return {"ops": {d: {op: sorted(v) for op, v in table.items()} for d, table in ops.items()}, "types": types}


def missing_kernels(required: dict, package: dict) -> list[str]:
    """'domain:version:op' kernels the file needs that the package does not hold."""
    missing = []
    for domain, table in required["ops"].items():
        held = package["ops"].get(domain, {})
        for op, versions in table.items():
            for v in versions:
                if op not in held or v > max(held[op]):
                    missing.append(f"{domain or 'ai.onnx'}:{v}:{op}")
    return sorted(missing)


def _package_config() -> tuple[str | None, str | None]:
    """(config text, which runtime gave it), or (None, why not)."""
    for name in PACKAGE_RUNTIMES:
        if isolated_python(ISOLATED[name]) is not None:
            try:
                text = IsolatedSession.mobile_package_config(ISOLATED[name])
            except RunnerError as exc:
                return None, f"not checked: {exc}"
            return text, name
    return None, "not checked: " + " or ".join(PACKAGE_RUNTIMES) + " not installed"


def _tensor_types(path: Path) -> set[str]:
    import onnx

    model = onnx.load(str(path))
    g = model.graph
    elem = [t.data_type for t in g.initializer] + [v.type.tensor_type.elem_type for v in [*g.input, *g.output]]
    return {_ONNX_TYPES.get(e, f"onnx type {e}") for e in elem}


def accelerator_partitions(path: Path) -> dict:
    """{nnapi, coreml}: nodes, supported nodes, partitions and ORT's verdict (try the EP: YES / MAYBE / NO)."""
    from onnxruntime.tools.mobile_helpers import usability_checker as uc

    eps = {
        "nnapi": lambda m: uc.check_nnapi_partitions(m, require_fixed_input_sizes=False),
        "coreml": lambda m: uc.check_coreml_partitions(m, False, "coreml_supported_mlprogram_ops.md"),
    }
    found = {}
    with tempfile.TemporaryDirectory(prefix="edgebert-ort-") as tmp:
        optimised = Path(tmp) / Path(path).name
        try:
            with _quiet():
                uc.optimize_model(Path(path), optimised, use_external_initializers=True)
                model = uc.ModelProtoWithShapeInfo(optimised).model_with_shape_info
                for ep, check in eps.items():
                    info = check(model)
                    found[ep] = {
                        "nodes": info.num_nodes,
                        "supported_nodes": info.num_supported_nodes,
                        "partitions": info.num_partitions,
                        "try_ep": info.suitability().name,
                    }
        except Exception as exc:  # internal tooling of onnxruntime: say it did not run, never fail compat
            return {"error": f"{type(exc).__name__}: {exc}"}
    return found


@contextlib.contextmanager
def _quiet():
    chatter = io.StringIO()
    prev = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            yield chatter
    finally:
        logging.disable(prev)


def _convert(path: Path, out: Path) -> tuple[Path, str]:
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    with _quiet() as chatter:
        convert_onnx_models_to_ort(
            path, output_dir=out, optimization_styles=[OptimizationStyle.Fixed], target_platform="arm"
        )
    ort = out / (path.stem + ".ort")
    if not ort.exists():
        raise RuntimeError(f"convert_onnx_models_to_ort wrote no .ort: {chatter.getvalue()[-800:]}")
    return ort, (out / (path.stem + ".required_operators.config")).read_text()


def ort_mobile(path: Path, check) -> dict:
    """The ORT Mobile verdict of one .onnx; `check(ort_path)` loads the .ort and returns parity figures."""
    import onnxruntime

    facts: dict = {"converted_with": f"onnxruntime {onnxruntime.__version__}", "target_platform": "arm"}
    with tempfile.TemporaryDirectory(prefix="edgebert-ort-") as tmp:
        try:
            ort, config = _convert(Path(path), Path(tmp))
        except Exception as exc:  # the verdict: ORT's tool cannot convert it
            return {**facts, "ort_format": False, "error": f"{type(exc).__name__}: {exc}", "verdict": "no ORT format"}
        facts["ort_bytes"] = ort.stat().st_size
        facts["ort_parity"] = check(ort)
    required = parse_operator_config(config)
    facts["required_kernels"] = [
        f"{d or 'ai.onnx'}:{v}:{op}" for d, t in required["ops"].items() for op, vs in t.items() for v in vs
    ]
    text, source = _package_config()
    if text is None:
        facts["reduced_package"] = {"status": source}
    else:
        package = parse_operator_config(text)
        missing = missing_kernels(required, package)
        odd_types = sorted(_tensor_types(Path(path)) - set(package["types"]) - _INDEX_TYPES)
        facts["reduced_package"] = {
            "status": "ok" if not (missing or odd_types) else "needs kernels or types it lacks",
            "op_set_from": f"mobile_package.required_operators.config of {source}",
            "opsets": sorted({v for t in package["ops"].get("ai.onnx", {}).values() for v in t if v > 1}),
            "missing_kernels": missing,
            "unsupported_types": odd_types,
        }
    facts["accelerators"] = accelerator_partitions(Path(path))
    facts["verdict"] = _verdict(facts)
    return facts


def _verdict(f: dict) -> str:
    return "; ".join(filter(None, (_package_verdict(f), _accelerator_verdict(f.get("accelerators") or {}))))


def _accelerator_verdict(acc: dict) -> str:
    if not acc or "error" in acc:
        return ""
    parts = [f"{ep} {a['partitions']} partitions ({a['supported_nodes']}/{a['nodes']} nodes)" for ep, a in acc.items()]
    if all(a["try_ep"] == "NO" for a in acc.values()):
        return f"accelerators: {', '.join(parts)}, so ORT recommends its CPU EP"
    return f"accelerators: {', '.join(parts)}, worth trying ({', '.join(ep for ep, a in acc.items() if a['try_ep'] != 'NO')})"


def _package_verdict(f: dict) -> str:
    parity = f["ort_parity"]
    if not parity.get("loads"):
        return f"the .ort does not load in {f['converted_with']}: {parity.get('error')}"
    if not parity.get("agrees"):
        return f"the .ort loads but disagrees with PyTorch ({'; '.join(parity.get('failures') or [])})"
    full = f"the full ORT Mobile packages (onnxruntime-android, onnxruntime-c/objc) run it as .ort ({f['ort_bytes']} bytes)"
    reduced = f["reduced_package"]
    if reduced["status"] == "ok":
        return f"{full}, and so does the reduced pre-built onnxruntime-mobile package"
    if not reduced.get("op_set_from"):
        return f"{full}; the reduced pre-built package was {reduced['status']}"
    lacks = reduced["missing_kernels"][:6] + [f"type {t}" for t in reduced["unsupported_types"]]
    more = len(reduced["missing_kernels"]) - 6
    return (
        f"{full}; the reduced pre-built onnxruntime-mobile package lacks {', '.join(lacks)}"
        + (f" and {more} more" if more > 0 else "")
        + f": use a full package, or a custom build with --include_ops_by_config ({len(f['required_kernels'])} kernels)"
    )
