// Testbench: an ABC basic residual block (identity shortcut) wired from the library kernels as a
// graph backend would (here called one after the other; in hardware a DATAFLOW region):
//
//   r --DuplicateStreams--+--IntThreshold (N bases)--SlidingWindowRect 3x3/1/1--
//                         |     XnorConvMVU+MultiBaseThreshold (N -> N2 bases)--SlidingWindowRect--
//                         |     XnorConvMVU+MultiBaseAccumulate (conv2: integer accumulator)--+
//                         +------------------------------- skip (integer) -------------------+--
//   ResidualAddThresholdSum (bits: next block's N3 bases, sum: r')--GlobalSumPool(r')
//
// Config (CFG_ prefix): H W C PE M N N2 N3 R_W (field width of r) OUT_W (of r').
// Both convs: C -> C channels, 3x3, stride 1, zero padding 1 (ZeroPadCorrection), SIMD = PE.
// Input : reps; IntThreshold thr/pos; conv1 weights, correction row/col/c, threshold params;
//         conv2 weights, correction, a/b; join s/t; join threshold thr/pos; reps*H*W*C/PE words of r.
// Output: bit words, then r' words, then pooled words; COUNT lines per kernel; ITERS line (join).
#include "tb_common.hpp"

using namespace abcn;

constexpr unsigned H = CFG_H, W = CFG_W, C = CFG_C, PE = CFG_PE, M = CFG_M, NF = C / PE;
constexpr unsigned N = CFG_N, N2 = CFG_N2, N3 = CFG_N3;
constexpr int R_W = CFG_R_W, OUT_W = CFG_OUT_W, A_W = 4, B_W = 3, S_W = 4, T_W = 12;
constexpr unsigned long long PIX = (unsigned long long)H * W;
constexpr unsigned MW = 9 * C, SF = MW / PE;
constexpr int ACC_W = (int)mb_acc_bits(M, N2, xnor_dot_max(MW), A_W, B_W);
constexpr int CW = (int)bits_signed_sym(MW);
constexpr int THR_W = OUT_W + 2;
constexpr int GSP_W = (int)global_sum_pool_bits(OUT_W, PIX);

typedef IntThresholdParams<C, PE, N, R_W + 1> Thr0;
typedef MultiBaseThreshold<C, PE, M, N, N2, xnor_dot_max(MW), A_W, B_W> Thr1;
typedef MultiBaseAccumulate<C, PE, M, N2, xnor_dot_max(MW), A_W, B_W, ACC_W> Acc2;
typedef ZeroPadCorrection<H, W, C, PE, M, 3, 3, CW> Corr;
typedef ResidualAddParams<C, PE, 2, S_W, T_W> Add;
typedef IntThresholdParams<C, PE, N3, THR_W> Thr3;
static Thr0 thr0;
static BinaryWeights<PE, PE, M, NF * SF> w1, w2;
static Corr corr1, corr2;
static Thr1 thr1;
static Acc2 acc2;
static Add add;
static Thr3 thr3;

int main(int argc, char **argv) {
    if (argc != 3) tb::fail("usage: tb IN OUT");
    tb::Reader r(argv[1]);
    tb::Writer w(argv[2]);
    const unsigned reps = (unsigned)r.integer("reps");
    tb::read_act(r, thr0);
    tb::read_weights(r, w1);
    tb::read_corr(r, corr1);
    tb::read_act(r, thr1);
    tb::read_weights(r, w2);
    tb::read_corr(r, corr2);
    tb::read_act(r, acc2);
    tb::read_act(r, add);
    tb::read_act(r, thr3);
    const unsigned long long words = reps * PIX * NF;
    hls::stream<ap_uint<PE * R_W> > rin("r"), ra("r.a"), rb("r.b");
    tb::read_words(r, rin, words);
    r.expect_end();
    hls::stream<ap_uint<N * PE> > q("q"), qw("q.win");
    hls::stream<ap_uint<N2 * PE> > h1("h1"), h1w("h1.win");
    hls::stream<ap_uint<PE * ACC_W> > a2("acc2");
    hls::stream<ap_uint<N3 * PE> > bits("bits");
    hls::stream<ap_uint<PE * OUT_W> > rout("r'"), rsum("r'.pool"), rkeep("r'.out");
    hls::stream<ap_uint<PE * GSP_W> > pooled("pooled");
    IterCounter c_dup, c_thr0, c_swg1, c_mvu1, c_swg2, c_mvu2, c_join, c_dup2, c_pool;
    DuplicateStreams<PE * R_W, PIX * NF>(rin, ra, rb, reps, &c_dup);
    IntThreshold<C, PE, PIX, R_W>(ra, q, thr0, reps, &c_thr0);
    SlidingWindowRect<H, W, NF, N * PE, 3, 3, 1, 1, 1, 1, 1, 1>(q, qw, reps, &c_swg1);
    XnorConvMVU<MW, C, PE, PE, M, N>(qw, h1, w1, thr1, corr1, reps * H * W, &c_mvu1);
    SlidingWindowRect<H, W, NF, N2 * PE, 3, 3, 1, 1, 1, 1, 1, 1>(h1, h1w, reps, &c_swg2);
    XnorConvMVU<MW, C, PE, PE, M, N2>(h1w, a2, w2, acc2, corr2, reps * H * W, &c_mvu2);
    ResidualAddThresholdSum<C, PE, PIX, ACC_W, R_W, OUT_W>(a2, rb, bits, rout, add, thr3, reps, &c_join);
    DuplicateStreams<PE * OUT_W, PIX * NF>(rout, rkeep, rsum, reps, &c_dup2);
    GlobalSumPool<C, PE, PIX, OUT_W, GSP_W>(rsum, pooled, reps, &c_pool);
    tb::expect_empty(rin, "r");
    tb::expect_empty(ra, "r.a");
    tb::expect_empty(rb, "r.b");
    tb::expect_empty(q, "q");
    tb::expect_empty(qw, "q.win");
    tb::expect_empty(h1, "h1");
    tb::expect_empty(h1w, "h1.win");
    tb::expect_empty(a2, "acc2");
    tb::expect_empty(rout, "r'");
    tb::expect_empty(rsum, "r'.pool");
    tb::drain(bits, words, w, "bits");
    tb::drain(rkeep, words, w, "r'");
    tb::drain(pooled, (unsigned long long)reps * NF, w, "pooled");
    w.count("dup", c_dup);
    w.count("thr0", c_thr0);
    w.count("swg1", c_swg1);
    w.count("mvu1", c_mvu1);
    w.count("swg2", c_swg2);
    w.count("mvu2", c_mvu2);
    w.count("join", c_join);
    w.count("dup2", c_dup2);
    w.count("pool", c_pool);
    w.counter(c_join);
    return 0;
}
