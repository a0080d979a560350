// Testbench: abcn::SlidingWindow (square: -DCFG_K= -DCFG_S= -DCFG_P=) or abcn::SlidingWindowRect
// (-DCFG_KH= -DCFG_KW= -DCFG_SH= -DCFG_SW= -DCFG_PT= -DCFG_PL= -DCFG_PB= -DCFG_PR=), or with
// -DCFG_MAXPOOL=1 abcn::BitMaxPoolRect (same rect parameters). Always: -DCFG_IFM_H= -DCFG_IFM_W=
// -DCFG_CF= -DCFG_WORD_W=.
// Input : reps, then reps*IFM_H*IFM_W*CF words.
// Output: reps*OFM_H*OFM_W*KH*KW*CF window words (max pool: reps*OFM_H*OFM_W*CF) + counter.
#include "tb_common.hpp"

#ifdef CFG_KH
constexpr unsigned KH = CFG_KH, KW = CFG_KW, SH = CFG_SH, SW = CFG_SW;
constexpr unsigned PT = CFG_PT, PL = CFG_PL, PB = CFG_PB, PR = CFG_PR;
#else
constexpr unsigned KH = CFG_K, KW = CFG_K, SH = CFG_S, SW = CFG_S;
constexpr unsigned PT = CFG_P, PL = CFG_P, PB = CFG_P, PR = CFG_P;
#endif
#ifndef CFG_MAXPOOL
#define CFG_MAXPOOL 0
#endif

int main(int argc, char **argv) {
    if (argc != 3) tb::fail("usage: tb IN OUT");
    constexpr unsigned IFM_H = CFG_IFM_H, IFM_W = CFG_IFM_W, CF = CFG_CF;
    constexpr int WORD_W = CFG_WORD_W;
    tb::Reader r(argv[1]);
    tb::Writer w(argv[2]);
    const unsigned reps = (unsigned)r.integer("reps");
    hls::stream<ap_uint<WORD_W> > in("in"), out("out");
    tb::read_words(r, in, (unsigned long long)reps * IFM_H * IFM_W * CF);
    r.expect_end();
    abcn::IterCounter cnt;
    constexpr unsigned OH = abcn::conv_out_dim(IFM_H, KH, SH, PT, PB);
    constexpr unsigned OW = abcn::conv_out_dim(IFM_W, KW, SW, PL, PR);
#if CFG_MAXPOOL
    abcn::BitMaxPoolRect<IFM_H, IFM_W, CF, WORD_W, KH, KW, SH, SW, PT, PL, PB, PR>(in, out, reps, &cnt);
    constexpr unsigned long long OUT_WORDS = (unsigned long long)OH * OW * CF;
#elif defined(CFG_KH)
    abcn::SlidingWindowRect<IFM_H, IFM_W, CF, WORD_W, KH, KW, SH, SW, PT, PL, PB, PR>(in, out, reps, &cnt);
    constexpr unsigned long long OUT_WORDS = (unsigned long long)OH * OW * KH * KW * CF;
#else
    abcn::SlidingWindow<IFM_H, IFM_W, CF, WORD_W, KH, SH, PT>(in, out, reps, &cnt);
    constexpr unsigned long long OUT_WORDS = (unsigned long long)OH * OW * KH * KW * CF;
#endif
    tb::expect_empty(in, "input");
    tb::drain(out, reps * OUT_WORDS, w, "output");
    w.counter(cnt);
    return 0;
}
