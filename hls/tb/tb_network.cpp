// Testbench: a small three-layer ABC network built from the library kernels, as a code
// generator would chain them (here called one after the other; in hardware a DATAFLOW region):
//
//   uint8 image --IntSlidingWindow--IntMVU+MultiBaseThreshold(N=1 -> N1 bases)--
//     MultiBaseWidthConverter(PE0 -> SIMD1)--BitMaxPool--
//     BitSlidingWindow--XnorMVU+MultiBaseThreshold(N1 -> N2 bases)--
//     MultiBaseWidthConverter(PE1 -> SIMD2)--XnorLogits (fully connected, flattened (h, w, c))
//
// Config (CFG_ prefix): H0 W0 C0 K0 S0 P0 SIMD0 PE0 M0 C1 N1 POOL SIMD1 K1 S1 P1 PE1 M1 C2 N2
//                       SIMD2 PE2 M2 CLASSES.
// Input : reps; layer-0 weights + threshold params; layer-1 weights + threshold params; layer-2
//         weights + coefficients; reps*H0*W0*C0/SIMD0 pixel words.
// Output: reps*CLASSES/PE2 logits words; "COUNT <kernel> <iters> <calls>" lines; ITERS line.
#include "tb_common.hpp"

using namespace abcn;

constexpr unsigned H0 = CFG_H0, W0 = CFG_W0, C0 = CFG_C0, K0 = CFG_K0, S0 = CFG_S0, P0 = CFG_P0;
constexpr unsigned SIMD0 = CFG_SIMD0, PE0 = CFG_PE0, M0 = CFG_M0, C1 = CFG_C1, N1 = CFG_N1;
constexpr unsigned POOL = CFG_POOL, SIMD1 = CFG_SIMD1, K1 = CFG_K1, S1 = CFG_S1, P1 = CFG_P1;
constexpr unsigned PE1 = CFG_PE1, M1 = CFG_M1, C2 = CFG_C2, N2 = CFG_N2;
constexpr unsigned SIMD2 = CFG_SIMD2, PE2 = CFG_PE2, M2 = CFG_M2, CLASSES = CFG_CLASSES;
constexpr unsigned IN_BITS = 8;
constexpr int A_W = 4, B_W = 3, A_W_FC = 5;

// layer 0: integer conv
constexpr unsigned OH0 = conv_out_dim(H0, K0, S0, P0), OW0 = conv_out_dim(W0, K0, S0, P0);
constexpr unsigned MW0 = K0 * K0 * C0;
typedef MultiBaseThreshold<C1, PE0, M0, 1, N1, int_dot_max(MW0, IN_BITS, false), A_W, 2> Thr0;
static BinaryWeights<SIMD0, PE0, M0, (C1 / PE0) * (MW0 / SIMD0)> w0;
static Thr0 t0;
// pool
constexpr unsigned PH = OH0 / POOL, PW = OW0 / POOL;
// layer 1: binary conv
constexpr unsigned OH1 = conv_out_dim(PH, K1, S1, P1), OW1 = conv_out_dim(PW, K1, S1, P1);
constexpr unsigned MW1 = K1 * K1 * C1;
typedef MultiBaseThreshold<C2, PE1, M1, N1, N2, xnor_dot_max(MW1), A_W, B_W> Thr1;
static BinaryWeights<SIMD1, PE1, M1, (C2 / PE1) * (MW1 / SIMD1)> w1;
static Thr1 t1;
// layer 2: fully connected logits over the flattened (h, w, c) feature map
constexpr unsigned MW2 = OH1 * OW1 * C2;
constexpr int ACC2_W = (int)mb_acc_bits(M2, N2, xnor_dot_max(MW2), A_W_FC, B_W);
typedef MultiBaseAccumulate<CLASSES, PE2, M2, N2, xnor_dot_max(MW2), A_W_FC, B_W, ACC2_W> Acc2;
static BinaryWeights<SIMD2, PE2, M2, (CLASSES / PE2) * (MW2 / SIMD2)> w2;
static Acc2 t2;

int main(int argc, char **argv) {
    if (argc != 3) tb::fail("usage: tb IN OUT");
    tb::Reader r(argv[1]);
    tb::Writer w(argv[2]);
    const unsigned reps = (unsigned)r.integer("reps");
    tb::read_weights(r, w0);
    tb::read_act(r, t0);
    tb::read_weights(r, w1);
    tb::read_act(r, t1);
    tb::read_weights(r, w2);
    tb::read_act(r, t2);

    hls::stream<ap_uint<SIMD0 * IN_BITS> > s_in("s_in"), s_win0("s_win0");
    hls::stream<ap_uint<N1 * PE0> > s_act0("s_act0");
    hls::stream<ap_uint<N1 * SIMD1> > s_act0w("s_act0w"), s_pool("s_pool"), s_win1("s_win1");
    hls::stream<ap_uint<N2 * PE1> > s_act1("s_act1");
    hls::stream<ap_uint<N2 * SIMD2> > s_act1w("s_act1w");
    hls::stream<ap_uint<PE2 * ACC2_W> > s_out("s_out");
    tb::read_words(r, s_in, (unsigned long long)reps * H0 * W0 * (C0 / SIMD0));
    r.expect_end();

    IterCounter c_swg0, c_mvu0, c_wc0, c_pool, c_swg1, c_mvu1, c_wc1, c_fc;
    IntSlidingWindow<H0, W0, C0, IN_BITS, SIMD0, K0, S0, P0>(s_in, s_win0, reps, &c_swg0);
    IntMVU<MW0, C1, SIMD0, PE0, M0, IN_BITS, false>(s_win0, s_act0, w0, t0, reps * OH0 * OW0, &c_mvu0);
    MultiBaseWidthConverter<N1, PE0, SIMD1, OH0 * OW0 * C1 / PE0>(s_act0, s_act0w, reps, &c_wc0);
    BitMaxPoolNC<OH0, OW0, C1, N1, SIMD1, POOL>(s_act0w, s_pool, reps, &c_pool);
    BitSlidingWindow<PH, PW, C1, N1, SIMD1, K1, S1, P1>(s_pool, s_win1, reps, &c_swg1);
    XnorMVU<MW1, C2, SIMD1, PE1, M1, N1>(s_win1, s_act1, w1, t1, reps * OH1 * OW1, &c_mvu1);
    MultiBaseWidthConverter<N2, PE1, SIMD2, OH1 * OW1 * C2 / PE1>(s_act1, s_act1w, reps, &c_wc1);
    XnorLogits<MW2, CLASSES, SIMD2, PE2, M2, N2, A_W_FC, B_W, ACC2_W>(s_act1w, s_out, w2, t2, reps, &c_fc);

    tb::expect_empty(s_in, "s_in");
    tb::expect_empty(s_win0, "s_win0");
    tb::expect_empty(s_act0, "s_act0");
    tb::expect_empty(s_act0w, "s_act0w");
    tb::expect_empty(s_pool, "s_pool");
    tb::expect_empty(s_win1, "s_win1");
    tb::expect_empty(s_act1, "s_act1");
    tb::expect_empty(s_act1w, "s_act1w");
    tb::drain(s_out, (unsigned long long)reps * (CLASSES / PE2), w, "logits");
    const IterCounter *cs[] = {&c_swg0, &c_mvu0, &c_wc0, &c_pool, &c_swg1, &c_mvu1, &c_wc1, &c_fc};
    const char *names[] = {"swg0", "mvu0", "wc0", "pool", "swg1", "mvu1", "wc1", "fc"};
    IterCounter total;
    for (unsigned i = 0; i < 8; i++) {
        w.count(names[i], *cs[i]);
        total.iters += cs[i]->iters;
        total.calls += cs[i]->calls;
    }
    w.counter(total);
    return 0;
}
