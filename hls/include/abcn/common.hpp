// abcn-hw HLS kernel library: common definitions.
//
// Header-only, Vitis HLS style. Include <abcn/abcn.hpp> to get every kernel.
// The Xilinx open-source ap_types headers (ap_int.h, hls_stream.h) are taken from the include
// path (e.g. the copy shipped by the hls4ml wheel); they are never copied into this library.
#ifndef ABCN_COMMON_HPP
#define ABCN_COMMON_HPP

// g++ < 13 cannot silence -Wunknown-pragmas (the '#pragma HLS' lines) for a region, so in C
// simulation this header is treated as a system header; the test-suite also builds every kernel
// with -DABCN_NO_SYSTEM_HEADER -Wall -Wextra -Werror -Wno-unknown-pragmas (ap_types via -isystem)
// to keep the library itself warning-clean.
#if defined(__GNUC__) && !defined(__clang__) && !defined(__SYNTHESIS__) && !defined(ABCN_NO_SYSTEM_HEADER)
#pragma GCC system_header
#endif

// The open-source ap_types headers trigger a few g++ warnings (-Wall) in their own code. Silence
// those warnings for the headers only, so that user code can still build with -Wall -Werror.
#if defined(__GNUC__) && !defined(__SYNTHESIS__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wint-in-bool-context"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wclass-memaccess"
#pragma GCC diagnostic ignored "-Waggressive-loop-optimizations"
#pragma GCC diagnostic ignored "-Warray-bounds"
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#pragma GCC diagnostic ignored "-Wshift-count-overflow"
#pragma GCC diagnostic ignored "-Wshift-count-negative"
#pragma GCC diagnostic ignored "-Wdeprecated-copy"
#pragma GCC diagnostic ignored "-Wtype-limits"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wparentheses"
#endif
#include <ap_int.h>
#include <hls_stream.h>
#if !defined(__SYNTHESIS__)
#include <type_traits>
#include <utility>
#endif
#if defined(__GNUC__) && !defined(__SYNTHESIS__)
#pragma GCC diagnostic pop
#endif

namespace abcn {

// ---------------------------------------------------------------------------------------------
// Compile-time helpers (constexpr, C++14).
// ---------------------------------------------------------------------------------------------

// ceil(log2(x)) for x >= 1; clog2(1) == 0.
constexpr unsigned clog2(unsigned long long x) {
    return x <= 1 ? 0u : 1u + clog2((x + 1) / 2);
}

// Number of bits of an unsigned integer able to hold 0..max.
constexpr unsigned bits_unsigned(unsigned long long max) {
    return max == 0 ? 1u : clog2(max + 1);
}

// Number of bits of a two's-complement integer able to hold -(max+1)..(max+1).
// (One more than strictly needed for [-max, max]: thresholds clipped to +-(max+1) always fit.)
constexpr unsigned bits_signed_sym(unsigned long long max) {
    return clog2(max + 2) + 1;
}

constexpr unsigned long long pow2ull(unsigned e) { return e == 0 ? 1ull : 2ull * pow2ull(e - 1); }

constexpr unsigned umax(unsigned a, unsigned b) { return a > b ? a : b; }

// Largest |value| of a two's-complement integer of w bits (i.e. 2^(w-1)).
constexpr unsigned long long signed_mag(unsigned w) { return w == 0 ? 0ull : pow2ull(w - 1); }

// ---------------------------------------------------------------------------------------------
// Iteration counters (C simulation only).
//
// Every kernel takes, in C simulation only, a trailing optional `abcn::IterCounter *` argument
// (declared through ABCN_COUNTER_PARAM). Each iteration of the kernel's pipelined loop(s) adds 1
// to `iters` -- with II=1 this is the kernel's cycle count per call, excluding the pipeline depth --
// and each call adds 1 to `calls`. The C-simulation fast paths (ABCN_CSIM_FAST), which have no
// such loop, advance `iters` from the work they actually do: per stream word written or read, the
// number of pipelined iterations that move it (XnorMVU/IntMVU: SF per output word; the width
// converter: max(words read, words written) per image); never from reps alone. With
// ABCN_SIM_SYNTH_PATH every iteration is counted. Under __SYNTHESIS__ the argument and the counting disappear,
// so the synthesizable path is unchanged. Call sites use ABCN_COUNTER_ARG(&counter), which also
// vanishes in synthesis.
// ---------------------------------------------------------------------------------------------
#ifndef __SYNTHESIS__
struct IterCounter {
    unsigned long long iters;
    unsigned long long calls;
    IterCounter() : iters(0), calls(0) {}
};
#define ABCN_COUNTER_PARAM , ::abcn::IterCounter *counter = nullptr
#define ABCN_COUNTER_ARG(c) , (c)
#define ABCN_COUNT_CALL() do { if (counter) counter->calls++; } while (0)
#define ABCN_COUNT_ITER() do { if (counter) counter->iters++; } while (0)
#else
#define ABCN_COUNTER_PARAM
#define ABCN_COUNTER_ARG(c)
#define ABCN_COUNT_CALL() do { } while (0)
#define ABCN_COUNT_ITER() do { } while (0)
#endif

// ---------------------------------------------------------------------------------------------
// C-simulation fast paths.
//
// In C simulation (no __SYNTHESIS__) the kernels use bit-exact fast paths on native integers (popcount,
// XnorMVU, IntMVU, the multi-base threshold through csim_act, the sliding window, the width
// converter), so that whole-network csim is fast. Define ABCN_SIM_SYNTH_PATH (or the older
// ABCN_PORTABLE_POPCOUNT) to simulate exactly the synthesizable code instead (abcn_hw.sim variant
// "synth"); the test-suite runs both on every zoo and BNN-PYNQ network of its fast set and compares
// outputs and iteration counters.
// ---------------------------------------------------------------------------------------------
#if !defined(__SYNTHESIS__) && !defined(ABCN_SIM_SYNTH_PATH) && !defined(ABCN_PORTABLE_POPCOUNT)
#define ABCN_CSIM_FAST 1
#else
#define ABCN_CSIM_FAST 0
#endif

#if ABCN_CSIM_FAST
// Bit vectors of 64-bit chunks (bit i = chunk i/64, bit i%64), for the C-simulation fast paths.
// OR the low `len` bits of v (len <= 64, higher bits zero) into dst at bit `pos`.
inline void csim_put_bits(unsigned long long *dst, unsigned pos, unsigned long long v, unsigned len) {
    const unsigned w = pos / 64, b = pos % 64;
    dst[w] |= v << b;
    if (b != 0 && b + len > 64) dst[w + 1] |= v >> (64 - b);
}
// The `len` bits (len <= 64) of src at bit `pos`; src must hold a chunk past the last bit read.
inline unsigned long long csim_get_bits(const unsigned long long *src, unsigned pos, unsigned len) {
    const unsigned w = pos / 64, b = pos % 64;
    unsigned long long v = src[w] >> b;
    if (b != 0 && b + len > 64) v |= src[w + 1] << (64 - b);
    return len == 64 ? v : (v & ((1ull << len) - 1ull));
}

// A W-bit word as 64-bit chunks (chunk c = bits [64c, 64c+63]) and back, for the C-simulation fast
// paths of the integer-stream kernels. A range selection on a wide ap_uint costs ~100 ns in C
// simulation; when the ap_types headers expose their storage (ap_int_base::V.get_pVal, the open-source
// and Vitis C-simulation headers) the chunks are read and written directly, else by range selection.
template <class T, class = void>
struct csim_has_pval : std::false_type {};
template <class T>
struct csim_has_pval<T, decltype((void)std::declval<const T &>().V.get_pVal(0))> : std::true_type {};

template <int W>
inline void csim_load_chunks(const ap_uint<W> &w, unsigned long long *dst, std::true_type) {
    for (unsigned c = 0; c < ((unsigned)W + 63) / 64; c++) dst[c] = (unsigned long long)w.V.get_pVal((int)c);
    if (W % 64 != 0) dst[(W - 1) / 64] &= (1ull << (W % 64)) - 1ull;
}
template <int W>
inline void csim_load_chunks(const ap_uint<W> &w, unsigned long long *dst, std::false_type) {
    for (unsigned c = 0; c < ((unsigned)W + 63) / 64; c++) {
        const unsigned hi = (c * 64 + 63 < (unsigned)W - 1) ? c * 64 + 63 : (unsigned)W - 1;
        dst[c] = ap_uint<64>(w(hi, c * 64)).to_uint64();
    }
}
// dst[0 .. ceil(W/64)-1] = the chunks of w (bits above W zero).
template <int W>
inline void csim_load_chunks(const ap_uint<W> &w, unsigned long long *dst) {
    if (W <= 64) {
        dst[0] = w.to_uint64();
        return;
    }
    csim_load_chunks(w, dst, std::integral_constant<bool, csim_has_pval<ap_uint<W> >::value && (W > 64)>());
}
template <int W>
inline void csim_store_chunks(ap_uint<W> &w, const unsigned long long *src, std::true_type) {
    for (unsigned c = 0; c < ((unsigned)W + 63) / 64; c++) w.V.get_pVal((int)c) = src[c];
    if (W % 64 != 0) w.V.get_pVal((W - 1) / 64) &= (1ull << (W % 64)) - 1ull;
}
template <int W>
inline void csim_store_chunks(ap_uint<W> &w, const unsigned long long *src, std::false_type) {
    for (unsigned c = 0; c < ((unsigned)W + 63) / 64; c++) {
        const unsigned hi = (c * 64 + 63 < (unsigned)W - 1) ? c * 64 + 63 : (unsigned)W - 1;
        w(hi, c * 64) = ap_uint<64>(src[c]);
    }
}
// The W-bit word whose chunks are src[0 .. ceil(W/64)-1] (bits above W ignored).
template <int W>
inline ap_uint<W> csim_store_chunks(const unsigned long long *src) {
    ap_uint<W> w = 0;
    if (W <= 64) {
        w = ap_uint<W>(src[0]);
        return w;
    }
    csim_store_chunks(w, src, std::integral_constant<bool, csim_has_pval<ap_uint<W> >::value && (W > 64)>());
    return w;
}

// The `len` bits (1 <= len <= 64) of x at bit `lo`: one to_uint64 for words of up to 64 bits (ap_uint
// range selects cost tens of instructions each), a range select above.
template <int W>
inline unsigned long long csim_field(const ap_uint<W> &x, unsigned lo, unsigned len) {
    if (W <= 64) {
        const unsigned long long u = x.to_uint64() >> lo;
        return len == 64 ? u : (u & ((1ull << len) - 1ull));
    }
    return ap_uint<64>(x(lo + len - 1, lo)).to_uint64();
}
#endif

// ---------------------------------------------------------------------------------------------
// The len bits (1 <= len <= 64) of x at bit lo, as a native integer (synthesizable: with constant
// lo and len, as in the unrolled loops that use it, it is wiring). One to_uint64 for words of up to
// 64 bits, a range select above: an ap_uint range select costs tens of ns in C simulation.
// ---------------------------------------------------------------------------------------------
template <int W>
inline unsigned long long field_u64(const ap_uint<W> &x, unsigned lo, unsigned len) {
#pragma HLS INLINE
    if (W <= 64) {
        const unsigned long long u = x.to_uint64() >> lo;
        return len >= 64 ? u : (u & ((1ull << len) - 1ull));
    }
    return ap_uint<64>(x(lo + len - 1, lo)).to_uint64();
}

// ---------------------------------------------------------------------------------------------
// Popcount of a W-bit vector.
//
// Synthesis (and the synthesis view, ABCN_SIM_SYNTH_PATH): a compressor tree sized for 6-input
// LUTs. x is cut into G = ceil(W/6) groups of 6 bits, group g = bits [6g, 6g+5] (the last one
// narrower when 6 does not divide W). A group's count 0..6 is a 6-input, 3-output function, read
// from a 64-entry table of constants (popcount6): one LUT6 per output bit, 3 LUTs per group. The G
// counts are summed by a balanced binary adder tree (popcount_tree), unrolled at compile time; a
// node summing k groups only ever holds 0..6k. In C the groups are cut from native 64-bit integers
// (x.to_uint64() up to 64 bits, one range select per 60 bits above) and the tree adds native
// integers: ap_uint arithmetic costs tens of ns per operation in C simulation, and only the bits of
// the clog2(W+1)+1-bit result are kept, so every adder's upper bits drive nothing (see
// hls/README.md, "Popcount", for what synthesis is assumed to make of it).
// C simulation (ABCN_CSIM_FAST): __builtin_popcountll on 64-bit chunks.
// ---------------------------------------------------------------------------------------------
// The number of 1 bits of the low 6 bits of v (0..6): a 64 x 3-bit ROM partitioned into constants,
// so that each use is its own 6-input function (3 LUT6), with no shared memory port.
inline unsigned popcount6(unsigned long long v) {
#pragma HLS INLINE
    static const unsigned char POP6[64] = {0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                           1, 2, 2, 3, 2, 3, 3, 4, 2, 3, 3, 4, 3, 4, 4, 5,
                                           1, 2, 2, 3, 2, 3, 3, 4, 2, 3, 3, 4, 3, 4, 4, 5,
                                           2, 3, 3, 4, 3, 4, 4, 5, 3, 4, 4, 5, 4, 5, 5, 6};
#pragma HLS ARRAY_PARTITION variable = POP6 complete dim = 1
    return POP6[v & 63u];
}

// The native chunks of a W-bit popcount operand: one chunk of 64 bits (11 groups) for W <= 64,
// else chunks of 60 bits (10 whole groups each).
template <int W>
struct popcount_chunks {
    static constexpr unsigned GROUPS = W <= 64 ? 11u : 10u;  // groups per chunk
    static constexpr unsigned COUNT = W <= 64 ? 1u : ((unsigned)W + 59) / 60;
    static unsigned long long get(const ap_uint<W> &x, unsigned c) {
#pragma HLS INLINE
        if (W <= 64) return x.to_uint64();
        const unsigned lo = 60 * c;
        const unsigned hi = (lo + 59 < (unsigned)W - 1) ? lo + 59 : (unsigned)W - 1;
        return ap_uint<60>(x(hi, lo)).to_uint64();
    }
    // the real bits of chunk c (W of the 64 for W <= 64; 60, fewer in the last chunk, above)
    static unsigned long long mask(unsigned c) {
        const unsigned len = W <= 64 ? (unsigned)W : ((unsigned)W - 60 * c < 60 ? (unsigned)W - 60 * c : 60u);
        return len >= 64 ? ~0ull : ((1ull << len) - 1ull);
    }
};

// Sum of the counts of groups LO .. LO+K-1 of a popcount operand (its chunks ch): a balanced binary
// adder tree (template recursion, resolved at compile time: no run-time recursion), 0..6K.
template <int W, unsigned LO, unsigned K>
struct popcount_tree {
    static unsigned sum(const unsigned long long (&ch)[popcount_chunks<W>::COUNT]) {
#pragma HLS INLINE
        return popcount_tree<W, LO, K / 2>::sum(ch) + popcount_tree<W, LO + K / 2, K - K / 2>::sum(ch);
    }
};
template <int W, unsigned LO>
struct popcount_tree<W, LO, 1> {
    static unsigned sum(const unsigned long long (&ch)[popcount_chunks<W>::COUNT]) {
#pragma HLS INLINE
        constexpr unsigned GC = popcount_chunks<W>::GROUPS;
        return popcount6(ch[LO / GC] >> (6 * (LO % GC)));
    }
};

// popcount of a (XNOR = false) or of XNOR(a, b) = ~(a ^ b) on the W bits (XNOR = true: W XNOR gates
// on the native chunks, the bits above W cleared), through the tree above.
template <int W, bool XNOR>
inline ap_uint<clog2(W + 1) + 1> popcount_synth(const ap_uint<W> &a, const ap_uint<W> &b) {
#pragma HLS INLINE
    typedef popcount_chunks<W> chunks;
    unsigned long long ch[chunks::COUNT];
#pragma HLS ARRAY_PARTITION variable = ch complete dim = 1
    for (unsigned c = 0; c < chunks::COUNT; c++) {
#pragma HLS UNROLL
        const unsigned long long u = chunks::get(a, c);
        ch[c] = XNOR ? (~(u ^ chunks::get(b, c)) & chunks::mask(c)) : u;
    }
    return popcount_tree<W, 0, ((unsigned)W + 5) / 6>::sum(ch);
}

template <int W>
inline ap_uint<clog2(W + 1) + 1> popcount(const ap_uint<W> &x) {
#pragma HLS INLINE
#if ABCN_CSIM_FAST
    unsigned cnt = 0;
    for (int lo = 0; lo < W; lo += 64) {
        const int hi = (lo + 63 < W - 1) ? lo + 63 : W - 1;
        const ap_uint<64> chunk = x(hi, lo);
        cnt += (unsigned)__builtin_popcountll((unsigned long long)chunk.to_uint64());
    }
    return cnt;
#else
    return popcount_synth<W, false>(x, x);
#endif
}

// popcount(XNOR(a, b)) on W bits: W XNOR gates, then the popcount's compressor tree.
template <int W>
inline ap_uint<clog2(W + 1) + 1> popcount_xnor(const ap_uint<W> &a, const ap_uint<W> &b) {
#pragma HLS INLINE
#if ABCN_CSIM_FAST
    return popcount<W>(~(a ^ b));
#else
    return popcount_synth<W, true>(a, b);
#endif
}

// ---------------------------------------------------------------------------------------------
// Storage of constant parameter words (ROMs), e.g. the packed weights of BinaryWeights.
//
// Synthesis (and ABCN_AP_ROMS): a W-bit word is stored as ap_uint<W>, so each ROM is exactly W
// bits wide. C simulation: as plain integers -- unsigned long long for W <= 64, RawWord<CH> (CH
// 64-bit chunks, chunk 0 = bits 0..63) above -- so that the generated parameter arrays are constant
// initialised: g++ compiles an array of a few 10^4 ap_uint literals in tens of seconds, plain
// integers in well under one. Kernels read a word through rom_word<W>::get (an ap_uint<W> in
// every mode) and C-simulation fast paths read 64-bit chunks through rom_word<W>::chunk.
//
// Generated initialisers: a word of W <= 64 bits is one integer literal (valid for both storages);
// a wider word is ABCN_ROM_WIDE(ap_uint<W>("0x...", 16), chunk0, chunk1, ...).
// ---------------------------------------------------------------------------------------------
template <unsigned CH>
struct RawWord {
    unsigned long long c[CH];
};

#if defined(__SYNTHESIS__) || defined(ABCN_AP_ROMS)
#define ABCN_ROM_WIDE(ap_value, ...) ap_value
template <int W>
struct rom_word {
    typedef ap_uint<W> type;
    static ap_uint<W> get(const type &v) {
#pragma HLS INLINE
        return v;
    }
    static type make(const ap_uint<W> &x) { return x; }
    static unsigned long long chunk(const type &v, unsigned c) {
        const unsigned hi = (c * 64 + 63 < (unsigned)W - 1) ? c * 64 + 63 : (unsigned)W - 1;
        return ap_uint<64>(v(hi, c * 64)).to_uint64();
    }
};
// Signed parameter words of W <= 32 bits (e.g. ZeroPadCorrection): ap_int<W> / a plain int.
template <int W>
struct rom_int {
    typedef ap_int<W> type;
    static ap_int<W> get(const type &v) {
#pragma HLS INLINE
        return v;
    }
};
#else
#define ABCN_ROM_WIDE(ap_value, ...) { { __VA_ARGS__ } }
template <int W, bool NARROW = (W <= 64)>
struct rom_word {
    typedef unsigned long long type;
    static ap_uint<W> get(const type &v) { return ap_uint<W>(v); }
    static type make(const ap_uint<W> &x) { return x.to_uint64(); }
    static unsigned long long chunk(const type &v, unsigned) { return v; }
};
template <int W>
struct rom_word<W, false> {
    static constexpr unsigned CH = ((unsigned)W + 63) / 64;
    typedef RawWord<CH> type;
    static ap_uint<W> get(const type &v) {
        ap_uint<W> x = 0;
        for (unsigned c = 0; c < CH; c++) {
            const unsigned hi = (c * 64 + 63 < (unsigned)W - 1) ? c * 64 + 63 : (unsigned)W - 1;
            x(hi, c * 64) = ap_uint<64>(v.c[c]);
        }
        return x;
    }
    static type make(const ap_uint<W> &x) {
        type v;
        for (unsigned c = 0; c < CH; c++) {
            const unsigned hi = (c * 64 + 63 < (unsigned)W - 1) ? c * 64 + 63 : (unsigned)W - 1;
            v.c[c] = ap_uint<64>(x(hi, c * 64)).to_uint64();
        }
        return v;
    }
    static unsigned long long chunk(const type &v, unsigned c) { return v.c[c]; }
};
template <int W>
struct rom_int {
    typedef int type;
    static ap_int<W> get(const type &v) { return ap_int<W>(v); }
};
#endif

} // namespace abcn

#endif // ABCN_COMMON_HPP
