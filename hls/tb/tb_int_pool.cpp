// Testbench: pooling on integer streams (int_pool.hpp).
//   CFG_OP 0  GlobalSumPool. Config: CFG_C CFG_PE CFG_PIXELS CFG_IN_W CFG_OUT_W.
//             Input: reps, reps*PIXELS*C/PE words. Output: reps*C/PE words (PE*OUT_W bits).
//   CFG_OP 1  IntMaxPool. Config: CFG_H CFG_W CFG_C CFG_PE CFG_IN_W CFG_KH CFG_KW CFG_SH CFG_SW
//             CFG_PT CFG_PL CFG_PB CFG_PR. Input: reps, reps*H*W*C/PE words. Output:
//             reps*OFM_H*OFM_W*C/PE words; "COUNT swg|max <iters> <calls>" (the two stages).
// Last line: the counter (all stages together).
#include "tb_common.hpp"

constexpr unsigned C = CFG_C, PE = CFG_PE, NF = C / PE;
constexpr int IN_W = CFG_IN_W;

int main(int argc, char **argv) {
    if (argc != 3) tb::fail("usage: tb IN OUT");
    tb::Reader r(argv[1]);
    tb::Writer w(argv[2]);
    const unsigned reps = (unsigned)r.integer("reps");
    hls::stream<ap_uint<PE * IN_W> > in("in");
#if CFG_OP == 0
    constexpr unsigned long long PIXELS = CFG_PIXELS;
    constexpr int OUT_W = CFG_OUT_W;
    hls::stream<ap_uint<PE * OUT_W> > out("out");
    tb::read_words(r, in, reps * PIXELS * NF);
    r.expect_end();
    abcn::IterCounter cnt;
    abcn::GlobalSumPool<C, PE, PIXELS, IN_W, OUT_W>(in, out, reps, &cnt);
    tb::expect_empty(in, "input");
    tb::drain(out, (unsigned long long)reps * NF, w, "output");
#else
    constexpr unsigned H = CFG_H, W = CFG_W, KH = CFG_KH, KW = CFG_KW, SH = CFG_SH, SW = CFG_SW;
    constexpr unsigned PT = CFG_PT, PL = CFG_PL, PB = CFG_PB, PR = CFG_PR;
    constexpr unsigned OH = abcn::conv_out_dim(H, KH, SH, PT, PB), OW = abcn::conv_out_dim(W, KW, SW, PL, PR);
    hls::stream<ap_uint<PE * IN_W> > out("out"), win("win");
    tb::read_words(r, in, (unsigned long long)reps * H * W * NF);
    r.expect_end();
    // the two stages one by one (for their counts), then the composed kernel (for its output)
    abcn::IterCounter c_swg, c_max, cnt;
    hls::stream<ap_uint<PE * IN_W> > in2("in2"), out2("out2");
    const unsigned long long n_in = in.size();
    for (unsigned long long i = 0; i < n_in; i++) {
        const ap_uint<PE * IN_W> v = in.read();
        in2.write(v);
        in.write(v);
    }
    abcn::SlidingWindowRect<H, W, NF, PE * IN_W, KH, KW, SH, SW, PT, PL, PB, PR>(in2, win, reps, &c_swg);
    abcn::IntWindowMax<H, W, C, PE, IN_W, KH, KW, SH, SW, PT, PL, PB, PR>(win, out2, reps, &c_max);
    abcn::IntMaxPool<H, W, C, PE, IN_W, KH, KW, SH, SW, PT, PL, PB, PR>(in, out, reps, &cnt);
    tb::expect_empty(in, "input");
    tb::expect_empty(in2, "input (stages)");
    tb::expect_empty(win, "windows");
    const unsigned long long n = (unsigned long long)reps * OH * OW * NF;
    if (out2.size() != n || out.size() != n) tb::fail("output word count");
    for (unsigned long long i = 0; i < n; i++) {
        const ap_uint<PE * IN_W> a = out.read(), b = out2.read();
        if (a != b) tb::fail("IntMaxPool differs from SlidingWindowRect + IntWindowMax");
        w.word(a);
    }
    w.count("swg", c_swg);
    w.count("max", c_max);
#endif
    w.counter(cnt);
    return 0;
}
