// Testbench: an integer first-layer convolution as the generated top wires it, a SlidingWindowRect
// feeding an IntMVU. In the fast view (ABCN_CSIM_FAST) it calls SlidingWindowIntMVU_csim as the top
// does; in the synthesis view (variant "portable") the two kernels and the stream between them.
// Act: DotPassThrough (CFG_ACT=0, the raw dots) or MultiBaseThreshold N=1 (CFG_ACT=1).
// Config: CFG_IFM_H CFG_IFM_W CFG_C CFG_SIMD CFG_IN_BITS CFG_IN_SIGNED CFG_KH CFG_KW CFG_SH CFG_SW
//         CFG_PT CFG_PL CFG_PB CFG_PR CFG_MH CFG_PE CFG_M CFG_ACT [CFG_NOUT CFG_A_W CFG_B_W].
// Input : images, weights, activation params, images*IFM_H*IFM_W*C/SIMD pixel words (SIMD*IN_BITS bits).
// Output: images*OFM_H*OFM_W*MH/PE words, "COUNT swg" (the window generator's counter), then the
//         IntMVU's counter.
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

constexpr unsigned IFM_H = CFG_IFM_H, IFM_W = CFG_IFM_W, SIMD = CFG_SIMD, CF = CFG_C / CFG_SIMD;
constexpr unsigned KH = CFG_KH, KW = CFG_KW, SH = CFG_SH, SW = CFG_SW;
constexpr unsigned PT = CFG_PT, PL = CFG_PL, PB = CFG_PB, PR = CFG_PR;
constexpr unsigned MW = KH * KW * CFG_C, MH = CFG_MH, PE = CFG_PE, M = CFG_M, NOUT = CFG_NOUT;
constexpr unsigned IN_BITS = CFG_IN_BITS, WORD_W = SIMD * IN_BITS, SF = MW / SIMD, NF = MH / PE;
constexpr bool IN_SIGNED = CFG_IN_SIGNED;
constexpr unsigned OFM_H = abcn::conv_out_dim(IFM_H, KH, SH, PT, PB);
constexpr unsigned OFM_W = abcn::conv_out_dim(IFM_W, KW, SW, PL, PR);
constexpr int A_W = CFG_A_W, B_W = CFG_B_W;
constexpr unsigned long long DOT_MAX = abcn::int_dot_max(MW, IN_BITS, IN_SIGNED);
constexpr int DW = (int)abcn::int_dot_bits(MW, IN_BITS, IN_SIGNED);

#if CFG_ACT == 0
typedef abcn::DotPassThrough<PE, M, 1, DW> Act;
#else
typedef abcn::MultiBaseThreshold<MH, PE, M, 1, NOUT, DOT_MAX, A_W, B_W> Act;
#endif

static abcn::BinaryWeights<SIMD, PE, M, NF * SF> weights;
static Act act;

int main(int argc, char **argv) {
    if (argc != 3) tb::fail("usage: tb IN OUT");
    tb::Reader r(argv[1]);
    tb::Writer w(argv[2]);
    const unsigned images = (unsigned)r.integer("images");
    tb::read_weights(r, weights);
#if CFG_ACT != 0
    tb::read_act(r, act);
#endif
    hls::stream<ap_uint<WORD_W> > in("in"), mid("mid");
    hls::stream<typename Act::out_t> out("out");
    tb::read_words(r, in, (unsigned long long)images * IFM_H * IFM_W * CF);
    r.expect_end();
    abcn::IterCounter swg, mvu;
#if ABCN_CSIM_FAST
    abcn::SlidingWindowIntMVU_csim<IFM_H, IFM_W, CF, WORD_W, KH, KW, SH, SW, PT, PL, PB, PR, MW, MH, SIMD, PE, M,
                                   IN_BITS, IN_SIGNED>(in, mid, out, weights, act, images,
                                                       images * OFM_H * OFM_W, &swg, &mvu);
#else
    abcn::SlidingWindowRect<IFM_H, IFM_W, CF, WORD_W, KH, KW, SH, SW, PT, PL, PB, PR>(in, mid, images, &swg);
    abcn::IntMVU<MW, MH, SIMD, PE, M, IN_BITS, IN_SIGNED>(mid, out, weights, act, images * OFM_H * OFM_W, &mvu);
#endif
    tb::expect_empty(in, "input");
    tb::expect_empty(mid, "window stream");
    tb::drain(out, (unsigned long long)images * OFM_H * OFM_W * NF, w, "output");
    w.count("swg", swg);
    w.counter(mvu);
    return 0;
}
