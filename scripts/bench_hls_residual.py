#!/usr/bin/env python
"""C-simulation speed of the residual-network kernels (hls/include/abcn/residual.hpp, int_pool.hpp):
the native-integer fast paths (default C simulation) against the synthesizable code simulated
as is (-DABCN_SIM_SYNTH_PATH), same inputs, same run. Shapes of a resnet18 stage-1 join
(C = 64, PE = 8, 56x56) and of its stem max-pool on a 112x112 map. Both builds must produce the
same output words (checked). Writes docs/results/bench_hls_residual.json.

    python scripts/bench_hls_residual.py [--images 2]
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.hls.tbutil import AP_TYPES, CXX  # noqa: E402

BENCH = r"""
#include <abcn/abcn.hpp>
#include <chrono>
#include <cstdio>
constexpr unsigned C = 64, PE = 8, NF = C / PE;
constexpr unsigned long long PIX = 56 * 56;
static abcn::ResidualAddParams<C, PE, 2, 8, 20> add;
static abcn::IntThresholdParams<C, PE, 3, 24> thr;
typedef std::chrono::steady_clock clk;
static double ns(clk::time_point a, clk::time_point b) { return std::chrono::duration<double>(b - a).count() * 1e9; }
int main(int argc, char **argv) {
    const unsigned reps = (unsigned)std::atoi(argv[1]);
    unsigned long long h = 1469598103934665603ull;  // FNV-1a over every output word
    auto mix = [&h](unsigned long long v) { h = (h ^ v) * 1099511628211ull; };
    for (unsigned pe = 0; pe < PE; pe++)
        for (unsigned nf = 0; nf < NF; nf++) {
            add.s[pe][nf][0] = (int)(pe * 7 + nf) % 200 - 100; add.s[pe][nf][1] = (int)(nf * 13 + pe) % 200 - 100;
            add.t[pe][nf] = (int)(pe * 1000 + nf * 77) - 4000;
            for (unsigned j = 0; j < 3; j++) thr.thr[pe][nf][j] = (int)(j * 100000) - 100000 + (int)pe;
            thr.pos[pe][nf] = (pe + nf) % 2;
        }
    hls::stream<ap_uint<PE * 18> > a("a"); hls::stream<ap_uint<PE * 22> > b("b");
    hls::stream<ap_uint<3 * PE> > bits("bits"); hls::stream<ap_uint<PE * 34> > sum("sum"), s2("s2");
    hls::stream<ap_uint<PE * 46> > gp("gp");
    for (unsigned long long i = 0; i < reps * PIX * NF; i++) {
        a.write(ap_uint<PE * 18>(i * 0x9E3779B97F4A7C15ull)); b.write(ap_uint<PE * 22>(i * 0xC2B2AE3D27D4EB4Full));
    }
    auto t0 = clk::now();
    abcn::ResidualAddThresholdSum<C, PE, PIX, 18, 22, 34>(a, b, bits, sum, add, thr, reps);
    auto t1 = clk::now();
    abcn::GlobalSumPool<C, PE, PIX, 34, 46>(sum, gp, reps);
    auto t2 = clk::now();
    while (!bits.empty()) mix(bits.read().to_uint64());
    while (!gp.empty()) { ap_uint<PE * 46> w = gp.read(); for (unsigned c = 0; c < PE * 46; c += 46) mix(ap_uint<46>(w(c + 45, c)).to_uint64()); }
    constexpr unsigned long long PIX2 = 112 * 112;
    hls::stream<ap_uint<PE * 16> > mi("mi"), mo("mo");
    for (unsigned long long i = 0; i < reps * PIX2 * NF; i++) mi.write(ap_uint<PE * 16>(i * 0x9E3779B97F4A7C15ull));
    auto t3 = clk::now();
    abcn::IntMaxPool<112, 112, C, PE, 16, 3, 3, 2, 2, 1, 1, 1, 1>(mi, mo, reps);
    auto t4 = clk::now();
    while (!mo.empty()) { ap_uint<PE * 16> w = mo.read(); mix(ap_uint<64>(w(63, 0)).to_uint64()); mix(ap_uint<64>(w(127, 64)).to_uint64()); }
    const double n = (double)reps * PIX * NF, n2 = (double)reps * PIX2 * NF;
    std::printf("{\"join_ns_per_word\": %.2f, \"sum_pool_ns_per_word\": %.2f, \"max_pool_ns_per_input_word\": %.2f, \"hash\": \"%016llx\"}\n",
                ns(t0, t1) / n, ns(t1, t2) / n, ns(t3, t4) / n2, h);
}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=2)
    args = ap.parse_args()
    if AP_TYPES is None or CXX is None:
        print("bench_hls_residual: error: needs g++ and the hls4ml ap_types headers (pip install abcn-hw[hls])",
              file=sys.stderr)
        return 2
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "bench.cpp"
        src.write_text(BENCH)
        for name, extra in (("fast", []), ("synth_path", ["-DABCN_SIM_SYNTH_PATH"])):
            exe = Path(tmp) / name
            subprocess.run([CXX, "-std=c++14", "-O2", "-I", str(ROOT / "hls" / "include"), "-I", str(AP_TYPES),
                            *extra, str(src), "-o", str(exe)], check=True)
            proc = subprocess.run([str(exe), str(args.images)], check=True, capture_output=True, text=True)
            out[name] = json.loads(proc.stdout)
    if out["fast"].pop("hash") != out["synth_path"].pop("hash"):
        print("bench_hls_residual: error: fast path and synthesizable path differ", file=sys.stderr)
        return 1
    speedup = {k: round(out["synth_path"][k] / out["fast"][k], 1) for k in out["fast"]}
    result = {"images": args.images, "shapes": "join/sum pool: C=64 PE=8 56x56; max pool 3x3/2 pad 1 on 112x112",
              "ns": out, "speedup": speedup, "outputs_equal": True, "machine": platform.processor() or platform.machine(),
              "note": "g++ -O2, shared cores; C simulation only (nothing synthesised)"}
    dst = ROOT / "docs" / "results" / "bench_hls_residual.json"
    dst.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
