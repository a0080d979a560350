// Testbench: abcn::popcount<W> for every width W of WIDTHS below (one build covers them all; the
// variant decides the code: the synthesizable LUT6 compressor tree, or the C-simulation fast path).
// Input : for each width in order, a count n, then n hex words of W bits.
// Output: per word x_i, popcount(x_i) and popcount_xnor(x_i, x_(i-1)) (x_(-1) = 0), in decimal,
// then "ITERS <words> CALLS <widths>".
#include "tb_common.hpp"

template <int W>
void run_width(tb::Reader &r, tb::Writer &w, abcn::IterCounter &cnt) {
    const long long n = r.integer("word count");
    if (n < 0) tb::fail("negative word count");
    ap_uint<W> prev = 0;
    for (long long i = 0; i < n; i++) {
        const ap_uint<W> x = r.word<W>("word");
        const ap_uint<abcn::clog2(W + 1) + 1> c = abcn::popcount<W>(x);
        const ap_uint<abcn::clog2(W + 1) + 1> cx = abcn::popcount_xnor<W>(x, prev);
        w.integer((long long)c.to_uint64());
        w.integer((long long)cx.to_uint64());
        prev = x;
        cnt.iters++;
    }
    cnt.calls++;
}

template <int... WS>
struct Widths {
    static void run(tb::Reader &r, tb::Writer &w, abcn::IterCounter &cnt) {
        const int order[] = {(run_width<WS>(r, w, cnt), 0)...};  // in order (braced initialiser)
        (void)order;
    }
};

// widths around the 6-bit groups and the 60-bit chunks of the synthesizable popcount, the 64-bit
// chunks of the fast path, and the wide words of real layers
typedef Widths<1, 2, 5, 6, 7, 12, 16, 59, 60, 61, 63, 64, 65, 119, 120, 121, 128, 130, 196, 400, 1024> WIDTHS;

int main(int argc, char **argv) {
    if (argc != 3) tb::fail("usage: tb IN OUT");
    tb::Reader r(argv[1]);
    tb::Writer w(argv[2]);
    abcn::IterCounter cnt;
    WIDTHS::run(r, w, cnt);
    r.expect_end();
    w.counter(cnt);
    return 0;
}
