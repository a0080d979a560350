"""``abcn-hw flow``: train -> export -> lower -> compile -> csim -> verify -> report, resumable.

Every stage writes its artefacts under the flow directory and a record ``.flow/<stage>.json``
holding a key: the hash of the stage's parameters and of the files it reads. A stage whose key
is unchanged and whose outputs are all present is skipped, so an interrupted or repeated flow
redoes only what changed. Every stage's input is validated before the first stage starts.

    DIR/train/        model.pt, model.onnx (QONNX), metrics.json        (abcn-hw train)
    DIR/reference/    the float32 reference of the same topology         (optional)
    DIR/stock/        the Brevitas stock binary baseline (lenet-stock)   (optional, models that have one)
    DIR/lowered.onnx, DIR/lowering.json                                   (abcn-hw lower)
    DIR/build/        the HLS project                                     (abcn-hw compile)
    DIR/csim/         inputs.npy, labels.npy, outputs.npy, csim.json      (abcn-hw csim)
    DIR/verify.json                                                       (abcn-hw verify)
    DIR/report.md, report.html, report.json, plots/*.png
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import AbcnError, OutputPathError, UsageError

STAGES = ("train", "reference", "stock", "lower", "compile", "csim", "verify", "report")
FLOW_VERSION = 1
SIM_OUTPUTS = {"csim_cycles.json"}  # written into a build dir by csim/verify: not part of the design


@dataclass
class FlowConfig:
    out: Path
    model: str = "lenet"
    dataset: str | None = None
    data_dir: Path | None = None
    weight_bases: int = 3
    act_bases: int = 3
    scale_grid: str = "fixed"
    scale_bits: int = 4
    epochs: int = 10
    batch_size: int = 128
    lr: float | None = None
    seed: int = 0
    reference: bool = True
    stock: bool = True  # with reference: also the Brevitas stock binary baseline, where the model has one
    target_fps: float | None = None
    folding: Path | None = None
    clock_mhz: float = 100.0
    images: int | None = None  # test images for csim/verify (None: the whole test split)
    limit_train: int | None = None  # train every model on the first K training images only
    quiet: bool = False
    command: list[str] = field(default_factory=list)

    @property
    def stock_model(self) -> str | None:
        """The stock binary baseline's model name (``lenet-stock``) if this flow trains one."""
        from .train import STOCK_MODELS

        if not (self.reference and self.stock):
            return None
        return next((name for name, zoo in STOCK_MODELS.items() if zoo == self.model), None)

    def train_config(self, reference: bool = False, stock: bool = False):
        from .train import TrainConfig

        if stock:
            return TrainConfig(model=self.stock_model, out=self.out / "stock", dataset=self.dataset,
                               data_dir=self.data_dir, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                               seed=self.seed, limit_train=self.limit_train, quiet=self.quiet,
                               command=list(self.command))
        sub = "reference" if reference else "train"
        return TrainConfig(model=self.model, out=self.out / sub,
                           weight_bases="float" if reference else self.weight_bases,
                           act_bases="float" if reference else self.act_bases, dataset=self.dataset,
                           data_dir=self.data_dir, scale_grid=self.scale_grid, scale_bits=self.scale_bits,
                           epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, seed=self.seed,
                           limit_train=self.limit_train, quiet=self.quiet, command=list(self.command))

    def validate(self) -> None:
        """Everything a stage would reject, checked before the first stage runs."""
        from .models import MODELS

        if self.model not in MODELS:
            raise UsageError(f"unknown model '{self.model}'", where="--model",
                             fix=f"use one of: {', '.join(MODELS)}")
        self.train_config().validate()
        if self.reference:
            self.train_config(reference=True).validate()
        if self.stock_model:
            self.train_config(stock=True).validate()
        if self.target_fps is not None and not (self.target_fps > 0):
            raise UsageError(f"--target-fps must be positive, got {self.target_fps}")
        if self.target_fps is not None and self.folding is not None:
            raise UsageError("--folding and --target-fps are exclusive", fix="pass one of them")
        if self.folding is not None and not Path(self.folding).is_file():
            raise UsageError(f"no such folding file: {self.folding}", where="--folding")
        if not (0 < self.clock_mhz <= 2000):
            raise UsageError(f"--clock-mhz must be in (0, 2000], got {self.clock_mhz}")
        if self.images is not None and self.images < 1:
            raise UsageError(f"--images must be >= 1, got {self.images}")
        if shutil.which(os.environ.get("CXX", "g++")) is None:
            raise UsageError("no C++ compiler found for the C simulation", where="compile/csim stages",
                             fix="install g++ (Debian: apt-get install g++)")
        from .backend.project import ap_types_dir  # the Xilinx ap_types headers (hls4ml wheel)

        ap_types_dir()
        out = Path(self.out)
        if out.exists() and not out.is_dir():
            raise OutputPathError("--out exists and is not a folder", str(out), "choose a folder path")
        if out.is_dir() and any(out.iterdir()) and not (out / ".flow").is_dir():
            raise OutputPathError("--out is a non-empty folder that is not a flow directory", str(out),
                                  "choose a new or empty folder")
        probe = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
        if not os.access(probe, os.W_OK):
            raise OutputPathError("cannot write to --out", str(out), "choose a writable location")

    def check_backend_support(self) -> None:
        """Can the HLS backend map this topology? Checked before training, on the untrained model
        (export, lowering and the backend's mapping; a few seconds), so that an unsupported network
        (e.g. a residual net whose joins stay float32) fails now, not after the training stages."""
        import tempfile
        import warnings

        import onnx

        from .backend.canonical import canonicalize
        from .backend.frontend import build_network
        from .compiler import lower
        from .models import build_model
        from .qonnx_export import export_to_qonnx

        model = build_model(self.model, self.weight_bases, self.act_bases, scale_grid=self.scale_grid,
                            scale_bits=self.scale_bits)
        model.eval()
        with tempfile.TemporaryDirectory(prefix="abcn_flow_check_") as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = Path(tmp) / "probe.onnx"
            export_to_qonnx(model, tuple(model.config["input_shape"]), path)
            lowered, _ = lower(onnx.load(str(path)), where=f"--model {self.model}")
            build_network(canonicalize(lowered.model), where=f"--model {self.model} (checked before training)")


def _hash_file(path: Path, h) -> None:
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)


def fingerprint(params: dict, files: list[Path]) -> str:
    """Hash of a stage's parameters and the contents of the files (or folders) it reads."""
    h = hashlib.sha256(json.dumps({"v": FLOW_VERSION, **params}, sort_keys=True, default=str).encode())
    for f in files:
        f = Path(f)
        paths = sorted(p for p in f.rglob("*") if p.is_file() and ".csim" not in p.parts
                       and p.name not in SIM_OUTPUTS) if f.is_dir() else [f]
        for p in paths:
            h.update(str(p.relative_to(f) if f.is_dir() else p.name).encode())
            _hash_file(p, h)
    return h.hexdigest()


class Flow:
    def __init__(self, cfg: FlowConfig, log: Callable[[str], None] | None = None):
        self.cfg = cfg
        self.dir = Path(cfg.out)
        self.state_dir = self.dir / ".flow"
        self.log = log or (lambda s: print(s, file=sys.stderr, flush=True))
        self.timings: dict[str, float] = {}
        self.skipped: list[str] = []
        self._csim_result = None  # set by the csim stage when it runs; verify reuses it

    # -- stage bookkeeping ---------------------------------------------------------------------
    def _record(self, stage: str) -> dict | None:
        p = self.state_dir / f"{stage}.json"
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError):
            return None

    def _fresh(self, stage: str, key: str, outputs: list[Path]) -> bool:
        rec = self._record(stage)
        return bool(rec and rec.get("key") == key and all(Path(o).exists() for o in outputs))

    def _run(self, stage: str, key: str, outputs: list[Path], fn: Callable[[], dict | None]) -> dict:
        if self._fresh(stage, key, outputs):
            self.log(f"[{stage}] up to date (inputs unchanged), skipped")
            self.skipped.append(stage)
            return self._record(stage).get("result", {})
        (self.state_dir / f"{stage}.json").unlink(missing_ok=True)
        self.log(f"[{stage}] running ...")
        t0 = time.time()
        try:
            result = fn() or {}
        except AbcnError as e:
            raise type(e)(f"{stage} stage: {e.what}", e.where, e.fix) from e
        seconds = time.time() - t0
        self.timings[stage] = seconds
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_dir / f"{stage}.json.tmp"
        tmp.write_text(json.dumps({"key": key, "seconds": seconds, "result": result}, indent=2, default=str))
        os.replace(tmp, self.state_dir / f"{stage}.json")
        self.log(f"[{stage}] done in {seconds:.1f} s")
        return result

    # -- stages ------------------------------------------------------------------------------------
    def _train_stage(self, reference: bool, stock: bool = False):
        """(train config, stage name, run dir, stage key, outputs) of a training stage."""
        cfg = self.cfg.train_config(reference, stock)
        stage = "stock" if stock else "reference" if reference else "train"
        run_dir = cfg.out
        key = fingerprint({"stage": stage, **{k: v for k, v in cfg.to_json().items()
                                             if k not in ("quiet", "command", "force", "resume", "out")}}, [])
        outputs = [run_dir / "metrics.json", run_dir / "model.onnx", run_dir / "model.pt"]
        return cfg, stage, run_dir, key, outputs

    def _backend_support_known(self) -> bool:
        """The compile stage succeeded for the model the (unchanged, finished) train stage made."""
        _, stage, _, key, outputs = self._train_stage(False)
        return self._fresh(stage, key, outputs) and self._record("compile") is not None

    def _train(self, reference: bool, stock: bool = False) -> dict:
        from .api import fit_config

        cfg, stage, run_dir, key, outputs = self._train_stage(reference, stock)

        def run():
            key_file = self.state_dir / f"{stage}.key"
            resumable = (run_dir / "checkpoint.pt").exists() and not (run_dir / "metrics.json").exists()
            if resumable and key_file.exists() and key_file.read_text() == key:
                cfg.resume = True
                self.log(f"[{stage}] resuming the interrupted run in {run_dir}")
            elif run_dir.exists():
                cfg.force = True
            self.state_dir.mkdir(parents=True, exist_ok=True)
            key_file.write_text(key)
            m = fit_config(cfg).to_dict()
            return {"test_accuracy": m.get("test_accuracy"), "export_test_accuracy": m.get("export_test_accuracy"),
                    "export_fidelity": m.get("export_fidelity"), "epochs": m.get("epochs")}

        return self._run(stage, key, outputs, run)

    def _test_inputs(self):
        """(images, labels, source) of the trained run's test split; loaded once per flow."""
        if getattr(self, "_inputs", None) is None:
            from .data import load_dataset

            m = json.loads((self.dir / "train" / "metrics.json").read_text())
            ds = load_dataset(m["dataset"], m.get("data_dir"), limit_train=1, limit_test=self.cfg.images)
            self._inputs = (ds.test.images.astype(np.float32), ds.test.labels, ds.source)
        return self._inputs

    def _lower(self) -> dict:
        from .api import lower

        src = self.dir / "train" / "model.onnx"
        out, rep_path = self.dir / "lowered.onnx", self.dir / "lowering.json"
        key = fingerprint({"stage": "lower", "images": self.cfg.images}, [src])

        def run():
            import onnxruntime as ort

            x, labels, source = self._test_inputs()
            res = lower(src, out, inputs=x, force=True, quiet=self.cfg.quiet)
            rep = res.report
            d = res.to_dict() | {"inputs": f"{len(x)} test images ({source})"}
            del d["out"]
            rep_path.write_text(json.dumps(d, indent=2) + "\n")
            self.log(rep.table())
            sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
            y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
            return {"exact": rep.exact, "output_equal": rep.output_equal,
                    "prediction_agreement": rep.prediction_agreement, "accuracy": float((y.argmax(-1) == labels).mean())}

        return self._run("lower", key, [out, rep_path], run)

    def _compile(self) -> dict:
        from .api import compile as compile_project

        src = self.dir / "lowered.onnx"
        build = self.dir / "build"
        files = [src] + ([Path(self.cfg.folding)] if self.cfg.folding else [])
        key = fingerprint({"stage": "compile", "target_fps": self.cfg.target_fps, "clock": self.cfg.clock_mhz}, files)

        def run():
            res = compile_project(src, build, folding=str(self.cfg.folding) if self.cfg.folding else None,
                                  target_fps=self.cfg.target_fps, clock_mhz=self.cfg.clock_mhz, force=True)
            self.log(res.project.table())
            return {"build_dir": str(build)}

        return self._run("compile", key, [build / "report.json"], run)

    def _csim(self) -> dict:
        from .api import csim

        build = self.dir / "build"
        csim_dir = self.dir / "csim"
        key = fingerprint({"stage": "csim", "images": self.cfg.images}, [build, self.dir / "train" / "metrics.json"])

        def run():
            x, labels, source = self._test_inputs()
            csim_dir.mkdir(parents=True, exist_ok=True)
            t0 = time.time()
            res = csim(build, x, quiet=self.cfg.quiet)  # g++ once per source content, timed apart from the run
            build_seconds = res.build_seconds
            seconds = time.time() - t0 - build_seconds
            self._csim_result = res  # the verify stage of this run reuses it (same build, same inputs)
            y = res.output
            acc = float((y.argmax(-1) == labels).mean())
            np.save(csim_dir / "inputs.npy", x)
            np.save(csim_dir / "labels.npy", labels)
            np.save(csim_dir / "outputs.npy", y)
            d = {"images": len(x), "source": source, "accuracy": acc, "seconds": seconds,
                 "images_per_second": len(x) / max(seconds, 1e-9), "build_seconds": build_seconds,
                 "loop_seconds": res.sim_seconds, "threads": res.threads}
            (csim_dir / "csim.json").write_text(json.dumps(d, indent=2) + "\n")
            self.log(f"[csim] g++ build {build_seconds:.1f} s; {len(x)} images in {seconds:.2f} s on {res.threads} "
                     f"thread(s), accuracy {100 * acc:.2f}%")
            return d

        return self._run("csim", key, [csim_dir / "outputs.npy", csim_dir / "csim.json"], run)

    def _verify(self) -> dict:
        from .api import verify

        build, model = self.dir / "build", self.dir / "train" / "model.onnx"
        out = self.dir / "verify.json"
        key = fingerprint({"stage": "verify", "images": self.cfg.images}, [build, model])

        def run():
            x, labels, _ = self._test_inputs()
            res = verify(model, build, x, csim_result=self._csim_result, quiet=self.cfg.quiet)
            d = res.to_dict()
            out.write_text(json.dumps(d, indent=2, default=float) + "\n")
            self.log(str(res))
            return {"ok": res.ok, "bit_exact": res.bit_exact, "mismatches": res.mismatches}

        return self._run("verify", key, [out], run)

    def run(self) -> dict:
        self.cfg.validate()
        if not self._backend_support_known():  # before training, not after it
            self.cfg.check_backend_support()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(exist_ok=True)
        t0 = time.time()
        results = {"train": self._train(False)}
        if self.cfg.reference:
            results["reference"] = self._train(True)
        if self.cfg.stock_model:
            results["stock"] = self._train(False, stock=True)
        results["lower"] = self._lower()
        results["compile"] = self._compile()
        results["csim"] = self._csim()
        results["verify"] = self._verify()
        from .report.flow_report import write_flow_report

        self.log("[report] writing report.md, report.html, report.json")
        paths = write_flow_report(self.dir, self.cfg, self.timings, self.skipped, time.time() - t0)
        results["report"] = {k: str(v) for k, v in paths.items()}
        return results


def flow_config_dict(cfg: FlowConfig) -> dict:
    d = asdict(cfg)
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}
