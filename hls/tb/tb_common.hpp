// Shared helpers of the abcn kernel testbenches (host side only, not synthesizable).
//
// Every testbench: argv[1] = input text file (whitespace-separated tokens written by the pytest
// test), argv[2] = output text file. Words are hexadecimal (most significant digit first, no 0x),
// integers decimal. The testbench fails (exit status != 0, message on stderr) on malformed input,
// on leftover input tokens, on a stream that the kernel left non-empty or under-filled -- nothing
// is rejected or dropped silently. Output file: the output tokens, then a line "ITERS <n> CALLS <c>".
#ifndef ABCN_TB_COMMON_HPP
#define ABCN_TB_COMMON_HPP

#include <abcn/abcn.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

namespace tb {

[[noreturn]] inline void fail(const std::string &msg) {
    std::cerr << "TB-FAIL: " << msg << std::endl;
    std::exit(2);
}

class Reader {
  public:
    explicit Reader(const char *path) : f_(path) {
        if (!f_) fail(std::string("cannot open input ") + path);
    }
    std::string token(const char *what) {
        std::string t;
        if (!(f_ >> t)) fail(std::string("input ended while reading ") + what);
        return t;
    }
    long long integer(const char *what) {
        const std::string t = token(what);
        char *end = nullptr;
        const long long v = std::strtoll(t.c_str(), &end, 10);
        if (end == t.c_str() || *end != '\0') fail(std::string("bad integer for ") + what + ": " + t);
        return v;
    }
    template <int W>
    ap_uint<W> word(const char *what) {
        const std::string t = token(what);
        ap_uint<W> v = 0;
        const int nd = (int)t.size();
        for (int i = 0; i < nd; i++) {
            const char c = t[nd - 1 - i];
            int d;
            if (c >= '0' && c <= '9') d = c - '0';
            else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
            else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
            else fail(std::string("bad hex digit for ") + what + ": " + t);
            for (int b = 0; b < 4; b++) {
                if ((d >> b) & 1) {
                    if (4 * i + b >= W) fail(std::string("hex word wider than the stream for ") + what);
                    v[4 * i + b] = 1;
                }
            }
        }
        return v;
    }
    // Signed integer that must fit in W bits (two's complement).
    template <int W>
    ap_int<W> sint(const char *what) {
        const long long v = integer(what);
        if (W < 64) {  // (every long long fits 64 bits)
            const long long lo = -(1LL << (W < 64 ? W - 1 : 0)), hi = -(lo + 1);
            if (v < lo || v > hi) fail(std::string("value out of range for ") + what);
        }
        return ap_int<W>(v);
    }
    void expect_end() {
        std::string t;
        if (f_ >> t) fail("leftover input token: " + t);
    }

  private:
    std::ifstream f_;
};

class Writer {
  public:
    explicit Writer(const char *path) : f_(path) {
        if (!f_) fail(std::string("cannot open output ") + path);
    }
    template <int W>
    void word(const ap_uint<W> &v) {
        static const char digits[] = "0123456789abcdef";
        std::string s;
        for (int i = (W + 3) / 4 - 1; i >= 0; i--) {
            int d = 0;
            for (int b = 3; b >= 0; b--) {
                const int bit = 4 * i + b;
                d = 2 * d + ((bit < W && v[bit]) ? 1 : 0);
            }
            s += digits[d];
        }
        f_ << s << '\n';
    }
    void integer(long long v) { f_ << v << '\n'; }
    void count(const char *name, const abcn::IterCounter &c) {
        f_ << "COUNT " << name << ' ' << c.iters << ' ' << c.calls << '\n';
    }
    void counter(const abcn::IterCounter &c) {
        f_ << "ITERS " << c.iters << " CALLS " << c.calls << '\n';
    }

  private:
    std::ofstream f_;
};

// Fill a stream with `count` words from the reader.
template <int W>
void read_words(Reader &r, hls::stream<ap_uint<W> > &s, unsigned long long count) {
    for (unsigned long long i = 0; i < count; i++) s.write(r.word<W>("stream word"));
}

// Drain exactly `count` words into the writer; the stream must then be empty.
template <int W>
void drain(hls::stream<ap_uint<W> > &s, unsigned long long count, Writer &w, const char *name) {
    if (s.size() != count)
        fail(std::string(name) + ": expected " + std::to_string(count) + " words, got " +
             std::to_string(s.size()));
    for (unsigned long long i = 0; i < count; i++) w.word(s.read());
}

template <int W>
void expect_empty(hls::stream<ap_uint<W> > &s, const char *name) {
    if (!s.empty())
        fail(std::string(name) + ": " + std::to_string(s.size()) + " words left unconsumed");
}


// ---- parameter readers (order: see README "testbench file format") ----

// weights: w[m][pe][tile] for m, pe, tile (row-major), SIMD-bit words
template <unsigned SIMD, unsigned PE, unsigned M, unsigned TILES>
void read_weights(Reader &r, abcn::BinaryWeights<SIMD, PE, M, TILES> &w) {
    for (unsigned m = 0; m < M; m++)
        for (unsigned pe = 0; pe < PE; pe++)
            for (unsigned t = 0; t < TILES; t++) w.set(m, pe, t, r.word<SIMD>("weight"));
}

template <int A_W, int B_W, class T>
void read_coeffs(Reader &r, T &act, unsigned pe_n, unsigned nf_n, unsigned m_n, unsigned n_n) {
    for (unsigned pe = 0; pe < pe_n; pe++)
        for (unsigned nf = 0; nf < nf_n; nf++)
            for (unsigned m = 0; m < m_n; m++)
                act.a[pe][nf][m] = r.sint<A_W>("a");
    for (unsigned n = 0; n < n_n; n++) act.b[n] = r.sint<B_W>("b");
}

// thr[pe][nf][j] (THR_W-bit signed), then pos[pe][nf] (0 or 1)
template <int THR_W, unsigned PE, unsigned NF, unsigned NOUT, class T>
void read_thresholds(Reader &r, T &t) {
    for (unsigned pe = 0; pe < PE; pe++)
        for (unsigned nf = 0; nf < NF; nf++)
            for (unsigned j = 0; j < NOUT; j++) t.thr[pe][nf][j] = r.sint<THR_W>("threshold");
    for (unsigned pe = 0; pe < PE; pe++)
        for (unsigned nf = 0; nf < NF; nf++) {
            const long long v = r.integer("pos");
            if (v != 0 && v != 1) fail("pos must be 0 or 1");
            t.pos[pe][nf] = (unsigned)v;
        }
}

// MultiBaseThreshold: a[pe][nf][m], b[n], thr[pe][nf][j], pos[pe][nf]
template <unsigned MH, unsigned PE, unsigned M, unsigned N, unsigned NOUT, unsigned long long DM,
          int A_W, int B_W, int ACC_W>
void read_act(Reader &r, abcn::MultiBaseThreshold<MH, PE, M, N, NOUT, DM, A_W, B_W, ACC_W> &t) {
    read_coeffs<A_W, B_W>(r, t, PE, MH / PE, M, N);
    read_thresholds<ACC_W, PE, MH / PE, NOUT>(r, t);
}

// IntThresholdParams: thr[pe][nf][j], pos[pe][nf]
template <unsigned C, unsigned PE, unsigned NOUT, int THR_W>
void read_act(Reader &r, abcn::IntThresholdParams<C, PE, NOUT, THR_W> &t) {
    read_thresholds<THR_W, PE, C / PE, NOUT>(r, t);
}

// ResidualAddParams: s[pe][nf][k], t[pe][nf]
template <unsigned C, unsigned PE, unsigned K, int S_W, int T_W, unsigned SH>
void read_act(Reader &r, abcn::ResidualAddParams<C, PE, K, S_W, T_W, SH> &p) {
    for (unsigned pe = 0; pe < PE; pe++)
        for (unsigned nf = 0; nf < C / PE; nf++)
            for (unsigned k = 0; k < K; k++) p.s[pe][nf][k] = r.sint<S_W>("s");
    for (unsigned pe = 0; pe < PE; pe++)
        for (unsigned nf = 0; nf < C / PE; nf++) p.t[pe][nf] = r.sint<T_W>("t");
}

// MultiBaseAccumulate: a[pe][nf][m], b[n]
template <unsigned MH, unsigned PE, unsigned M, unsigned N, unsigned long long DM, int A_W,
          int B_W, int ACC_W>
void read_act(Reader &r, abcn::MultiBaseAccumulate<MH, PE, M, N, DM, A_W, B_W, ACC_W> &t) {
    read_coeffs<A_W, B_W>(r, t, PE, MH / PE, M, N);
}

// ZeroPadCorrection: row[OFM_H], col[OFM_W] (classes), c[pe][nf][m][rc*CC + cc]
template <unsigned OH, unsigned OW, unsigned MH, unsigned PE, unsigned M, unsigned RC, unsigned CC, int CW>
void read_corr(Reader &r, abcn::ZeroPadCorrection<OH, OW, MH, PE, M, RC, CC, CW> &t) {
    typedef abcn::ZeroPadCorrection<OH, OW, MH, PE, M, RC, CC, CW> T;
    for (unsigned y = 0; y < OH; y++) {
        const long long v = r.integer("row class");
        if (v < 0 || v >= (long long)RC) fail("row class out of range");
        t.row[y] = (unsigned char)v;
    }
    for (unsigned x = 0; x < OW; x++) {
        const long long v = r.integer("column class");
        if (v < 0 || v >= (long long)CC) fail("column class out of range");
        t.col[x] = (unsigned char)v;
    }
    for (unsigned pe = 0; pe < PE; pe++)
        for (unsigned nf = 0; nf < T::NF; nf++)
            for (unsigned m = 0; m < M; m++)
                for (unsigned i = 0; i < RC * CC; i++) t.c[pe][nf][m][i] = (typename T::rom::type)r.sint<CW>("correction");
}

// DotPassThrough: no parameters
template <unsigned PE, unsigned M, unsigned N, int DW>
void read_act(Reader &, abcn::DotPassThrough<PE, M, N, DW> &) {}

} // namespace tb

#endif // ABCN_TB_COMMON_HPP
