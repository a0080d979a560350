// abcn-hw HLS kernel library: include everything.
#ifndef ABCN_ABCN_HPP
#define ABCN_ABCN_HPP

#include "common.hpp"
#include "sliding_window.hpp"
#include "pad_correction.hpp"
#include "xnor_mvu.hpp"
#include "multibase_threshold.hpp"
#include "input_layer.hpp"
#include "bit_maxpool.hpp"
#include "logits.hpp"
#include "stream_utils.hpp"
#include "residual.hpp"
#include "int_pool.hpp"

#endif // ABCN_ABCN_HPP
