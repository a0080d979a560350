// Testbench: a zero-padded binary convolution, SlidingWindowRect (pads with bit 0) -> XnorConvMVU
// with its ZeroPadCorrection, and DotPassThrough (CFG_ACT=0), MultiBaseThreshold (1) or
// MultiBaseAccumulate (2: the integer accumulator of a non-final conv feeding a residual join).
// Config: CFG_H CFG_W CFG_C CFG_N CFG_SIMD CFG_KH CFG_KW CFG_SH CFG_SW CFG_PT CFG_PL CFG_PB CFG_PR
//         CFG_MH CFG_PE CFG_M CFG_RC CFG_CC CFG_CW CFG_ACT [CFG_NOUT CFG_A_W CFG_B_W].
// Input : reps (images); weights w[m][pe][tile] (window order k = (ky*KW + kx)*C + c); correction
//         row[OFM_H], col[OFM_W], c[pe][nf][m][rc*CC + cc]; activation params; reps*H*W*C/SIMD
//         pixel words (N*SIMD bits).
// Output: reps*OFM_H*OFM_W*MH/PE words; "COUNT swg|mvu <iters> <calls>"; ITERS line (the MVU).
#include "tb_common.hpp"

#ifndef CFG_NOUT
#define CFG_NOUT 1
#endif
#ifndef CFG_A_W
#define CFG_A_W 4
#endif
#ifndef CFG_B_W
#define CFG_B_W 3
#endif

using namespace abcn;

constexpr unsigned H = CFG_H, W = CFG_W, C = CFG_C, N = CFG_N, SIMD = CFG_SIMD, CF = C / SIMD;
constexpr unsigned KH = CFG_KH, KW = CFG_KW, SH = CFG_SH, SW = CFG_SW;
constexpr unsigned PT = CFG_PT, PL = CFG_PL, PB = CFG_PB, PR = CFG_PR;
constexpr unsigned OH = (H + PT + PB - KH) / SH + 1, OW = (W + PL + PR - KW) / SW + 1;
constexpr unsigned MH = CFG_MH, PE = CFG_PE, M = CFG_M, NF = MH / PE;
constexpr unsigned MW = KH * KW * C, SF = MW / SIMD;
constexpr unsigned RC = CFG_RC, CC = CFG_CC, NOUT = CFG_NOUT;
constexpr int CW = CFG_CW, A_W = CFG_A_W, B_W = CFG_B_W;
constexpr int DW = (int)xnor_dot_bits(MW);

#if CFG_ACT == 0
typedef DotPassThrough<PE, M, N, DW> Act;
#elif CFG_ACT == 2
typedef MultiBaseAccumulate<MH, PE, M, N, xnor_dot_max(MW), A_W, B_W> Act;
#else
typedef MultiBaseThreshold<MH, PE, M, N, NOUT, xnor_dot_max(MW), A_W, B_W> Act;
#endif
typedef ZeroPadCorrection<OH, OW, MH, PE, M, RC, CC, CW> Corr;

static BinaryWeights<SIMD, PE, M, NF * SF> weights;
static Act act;
static Corr corr;

int main(int argc, char **argv) {
    if (argc != 3) tb::fail("usage: tb IN OUT");
    tb::Reader r(argv[1]);
    tb::Writer w(argv[2]);
    const unsigned reps = (unsigned)r.integer("reps");
    tb::read_weights(r, weights);
    tb::read_corr(r, corr);
    tb::read_act(r, act);
    hls::stream<ap_uint<N * SIMD> > in("in"), win("win");
    hls::stream<typename Act::out_t> out("out");
    tb::read_words(r, in, (unsigned long long)reps * H * W * CF);
    r.expect_end();
    IterCounter c_swg, c_mvu;
    SlidingWindowRect<H, W, CF, N * SIMD, KH, KW, SH, SW, PT, PL, PB, PR>(in, win, reps, &c_swg);
    XnorConvMVU<MW, MH, SIMD, PE, M, N>(win, out, weights, act, corr, reps * OH * OW, &c_mvu);
    tb::expect_empty(in, "input");
    tb::expect_empty(win, "window");
    tb::drain(out, (unsigned long long)reps * OH * OW * NF, w, "output");
    w.count("swg", c_swg);
    w.count("mvu", c_mvu);
    w.counter(c_mvu);
    return 0;
}
