// Testbench: abcn::IntMVU with DotPassThrough (CFG_ACT=0), MultiBaseThreshold N=1 (1) or, through
// IntLogits, MultiBaseAccumulate (2).
// Config: CFG_MW CFG_MH CFG_SIMD CFG_PE CFG_M CFG_IN_BITS CFG_IN_SIGNED CFG_ACT
//         [CFG_NOUT CFG_A_W CFG_B_W].
// Input : vectors, weights, activation params, vectors*MW/SIMD words (SIMD*IN_BITS bits).
// Output: vectors*MH/PE words + counter.
#include "tb_common.hpp"

#ifndef CFG_NOUT
#define CFG_NOUT 1
#endif
#ifndef CFG_A_W
#define CFG_A_W 4
#endif
#ifndef CFG_B_W
#define CFG_B_W 2
#endif

constexpr unsigned MW = CFG_MW, MH = CFG_MH, SIMD = CFG_SIMD, PE = CFG_PE, M = CFG_M;
constexpr unsigned IN_BITS = CFG_IN_BITS, NOUT = CFG_NOUT, SF = MW / SIMD, NF = MH / PE;
constexpr bool IN_SIGNED = CFG_IN_SIGNED;
constexpr int A_W = CFG_A_W, B_W = CFG_B_W;
constexpr unsigned long long DOT_MAX = abcn::int_dot_max(MW, IN_BITS, IN_SIGNED);
constexpr int DW = (int)abcn::int_dot_bits(MW, IN_BITS, IN_SIGNED);
constexpr int ACC_W = (int)abcn::mb_acc_bits(M, 1, DOT_MAX, A_W, B_W);

#if CFG_ACT == 0
typedef abcn::DotPassThrough<PE, M, 1, DW> Act;
#elif CFG_ACT == 1
typedef abcn::MultiBaseThreshold<MH, PE, M, 1, NOUT, DOT_MAX, A_W, B_W> Act;
#else
typedef abcn::MultiBaseAccumulate<MH, PE, M, 1, DOT_MAX, A_W, B_W, ACC_W> Act;
#endif

static abcn::BinaryWeights<SIMD, PE, M, NF * SF> weights;
static Act act;

int main(int argc, char **argv) {
    if (argc != 3) tb::fail("usage: tb IN OUT");
    tb::Reader r(argv[1]);
    tb::Writer w(argv[2]);
    const unsigned vectors = (unsigned)r.integer("vectors");
    tb::read_weights(r, weights);
    tb::read_act(r, act);
    hls::stream<ap_uint<SIMD * IN_BITS> > in("in");
    hls::stream<typename Act::out_t> out("out");
    tb::read_words(r, in, (unsigned long long)vectors * SF);
    r.expect_end();
    abcn::IterCounter cnt;
#if CFG_ACT == 2
    abcn::IntLogits<MW, MH, SIMD, PE, M, IN_BITS, IN_SIGNED, A_W, B_W, ACC_W>(in, out, weights, act,
                                                                           vectors, &cnt);
#else
    abcn::IntMVU<MW, MH, SIMD, PE, M, IN_BITS, IN_SIGNED>(in, out, weights, act, vectors, &cnt);
#endif
    tb::expect_empty(in, "input");
    tb::drain(out, (unsigned long long)vectors * NF, w, "output");
    w.counter(cnt);
    return 0;
}
