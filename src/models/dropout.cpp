#include "vqvae2/models/dropout.h"

#include "vector_clones.h"

#include "vqvae2/core/error.h"

#include <ATen/TensorIterator.h>

#include <algorithm>
#include <cmath>
#include <limits>

// The mask kernels below are vectorised clones (vector_clones.h): the hash is made of 32-bit multiplies
// and shifts, sixteen lanes at once with AVX-512. On the 2-core Zen 5 machine, masking a 4×256×64×64
// map took 2.1 ms (float) and 8.5 ms (bfloat16, through c10::BFloat16) on one thread with the AVX2
// clone alone; 0.95 and 1.3 ms on one thread with these AVX-512 clones, and 0.53 and 0.66 ms on two.

namespace vqvae2 {

namespace {

// A 32-bit integer hash (Wellons' "lowbias32": two multiply-xorshift rounds, a bijection), applied
// twice with the seed's halves as keys: for a given seed, index → bits is a fixed pseudo-random
// permutation, and different seeds give unrelated ones.
inline uint32_t lowbias32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

inline uint32_t hash(uint32_t index, uint32_t key1, uint32_t key2) { return lowbias32(lowbias32(index ^ key1) ^ key2); }

struct Keys {
  uint32_t key1, key2, threshold;  // keep element i when hash(i) ≥ threshold
};

// Keys for the elements whose index has these upper 32 bits (nonzero only past 2³² elements).
Keys keys_for(uint64_t seed, uint32_t threshold, uint64_t upper) {
  const auto mixed = seed + upper * 0x9E3779B97F4A7C15ull;
  return {static_cast<uint32_t>(mixed), lowbias32(static_cast<uint32_t>(mixed >> 32) ^ 0x5bd1e995u), threshold};
}

// What element `index` is multiplied by: scale if kept, else 0. The callers multiply without a
// branch, so that their loops vectorise: x · scale or x · 0, as torch's x · mask (NaN stays NaN).
inline float keep_factor(uint32_t index, Keys k, float scale) {
  return hash(index, k.key1, k.key2) >= k.threshold ? scale : 0.0f;
}

// out[i] = in[i] · keep_factor(first + i) for i in [0, n).
VQVAE2_VECTOR_CLONES void mask_floats(const float* in, float* out, int64_t n, uint32_t first, Keys k, float scale) {
  for (int64_t i = 0; i < n; ++i) out[i] = in[i] * keep_factor(first + static_cast<uint32_t>(i), k, scale);
}

// The same for bfloat16 (as its bits), multiplied in float and rounded back as c10::BFloat16 does.
VQVAE2_VECTOR_CLONES void mask_bfloat16s(const uint16_t* in, uint16_t* out, int64_t n, uint32_t first, Keys k,
                                         float scale) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = round_to_bfloat16(widen_bfloat16(in[i]) * keep_factor(first + static_cast<uint32_t>(i), k, scale));
  }
}

// The same for the other floating types (the overloads below are picked for float and bfloat16).
template <typename T>
void mask_values(const T* in, T* out, int64_t n, uint32_t first, Keys k, float scale) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = static_cast<T>(static_cast<float>(in[i]) * keep_factor(first + static_cast<uint32_t>(i), k, scale));
  }
}

void mask_values(const float* in, float* out, int64_t n, uint32_t first, Keys k, float scale) {
  mask_floats(in, out, n, first, k, scale);
}

void mask_values(const c10::BFloat16* in, c10::BFloat16* out, int64_t n, uint32_t first, Keys k, float scale) {
  mask_bfloat16s(reinterpret_cast<const uint16_t*>(in), reinterpret_cast<uint16_t*>(out), n, first, k, scale);
}

void check_probability(double p) {
  VQVAE2_CHECK(p >= 0 && p < 1, "dropout probability must be in [0, 1), got {}", p);
}

// y = x ⊙ m / (1 − p), in one pass, the mask m recomputed from (seed, index) rather than stored.
torch::Tensor apply_mask(const torch::Tensor& x, double p, uint64_t seed) {
  const auto in = x.contiguous();
  auto out = torch::empty_like(in, torch::MemoryFormat::Contiguous);
  // P(keep) = 1 − threshold / 2³² = 1 − p to within 2⁻³².
  const auto threshold = static_cast<uint32_t>(std::min(std::llround(p * 4294967296.0), 4294967295ll));
  const auto scale = static_cast<float>(1 / (1 - p));
  // Over the flat arrays, on LibTorch's intra-op threads (at::parallel_for, header-only, would run on
  // one thread in code built without OpenMP; TensorIterator::for_each is compiled into LibTorch).
  const auto flat_in = in.view(-1);
  const auto flat_out = out.view(-1);
  auto iter = at::TensorIteratorConfig().add_output(flat_out).add_input(flat_in).build();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, in.scalar_type(), "dropout", [&] {
    const auto* src = flat_in.data_ptr<scalar_t>();
    auto* dst = flat_out.data_ptr<scalar_t>();
    iter.for_each(
        [&](char** data, const int64_t* /*strides: one element apart*/, int64_t size0, int64_t size1) {
          VQVAE2_CHECK(size1 == 1, "dropout: expected one run of elements, got {}", size1);
          const int64_t begin = reinterpret_cast<const scalar_t*>(data[1]) - src, end = begin + size0;
          // Split where the index's upper 32 bits change (past 2³² elements only).
          for (int64_t start = begin; start < end;) {
            const uint64_t upper = static_cast<uint64_t>(start) >> 32;
            const int64_t stop = std::min<int64_t>(end, static_cast<int64_t>((upper + 1) << 32));
            const auto k = keys_for(seed, threshold, upper);
            const auto first = static_cast<uint32_t>(start);
            mask_values(src + start, dst + start, stop - start, first, k, scale);
            start = stop;
          }
        },
        int64_t{1} << 15);
  });
  return out;
}

// The same mask forward and backward: y = x ⊙ m and ∂L/∂x = ∂L/∂y ⊙ m, m rebuilt from the seed.
struct SeededDropout : torch::autograd::Function<SeededDropout> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, double p, int64_t seed) {
    ctx->saved_data["p"] = p;
    ctx->saved_data["seed"] = seed;
    return apply_mask(x, p, static_cast<uint64_t>(seed));
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto p = ctx->saved_data["p"].toDouble();
    const auto seed = ctx->saved_data["seed"].toInt();
    return {SeededDropout::apply(grads[0], p, seed), torch::Tensor(), torch::Tensor()};
  }
};

// dropout_with_seed and dropout after their probability check.
torch::Tensor checked_dropout_with_seed(const torch::Tensor& x, double p, uint64_t seed) {
  VQVAE2_CHECK(x.device().is_cpu(), "dropout_with_seed runs on the CPU, got a tensor on {}", x.device().str());
  VQVAE2_CHECK(x.is_floating_point(), "dropout takes floating-point tensors, got {}", c10::toString(x.scalar_type()));
  return SeededDropout::apply(x, p, static_cast<int64_t>(seed));
}

}  // namespace

torch::Tensor dropout_with_seed(const torch::Tensor& x, double p, uint64_t seed) {
  check_probability(p);
  return checked_dropout_with_seed(x, p, seed);
}

torch::Tensor dropout_mask(const torch::Tensor& like, double p, uint64_t seed) {
  torch::NoGradGuard no_grad;
  return dropout_with_seed(torch::ones(like.sizes(), like.options()), p, seed);
}

torch::Tensor dropout(const torch::Tensor& x, double p, bool training) {
  check_probability(p);
  if (!training || p == 0 || x.numel() == 0) return x;
  if (!x.device().is_cpu()) return torch::dropout(x, p, /*train=*/true);
  // One draw from the default generator: seeded by torch::manual_seed, saved with its state.
  const auto seed = torch::randint(std::numeric_limits<int64_t>::max(), {1}, torch::TensorOptions().dtype(torch::kLong));
  return checked_dropout_with_seed(x, p, static_cast<uint64_t>(seed.item<int64_t>()));
}

DropoutImpl::DropoutImpl(double p) : p_(p) { check_probability(p); }

torch::Tensor DropoutImpl::forward(const torch::Tensor& x) { return vqvae2::dropout(x, p_, is_training()); }

}  // namespace vqvae2
