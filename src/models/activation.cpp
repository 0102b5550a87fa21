#include "vqvae2/models/activation.h"

#include "vqvae2/core/error.h"

#include "vector_clones.h"

#include <ATen/TensorIterator.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>

// This file is compiled with -ffp-contract=off (see vector_clones.h) and -fno-trapping-math, which lets
// GCC compute both sides of a choice in every lane (we never trap on floating-point exceptions).

#if defined(__GNUC__)
#define VQVAE2_ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define VQVAE2_ALWAYS_INLINE inline
#endif

namespace vqvae2 {

namespace {

// ---- float math, written to vectorise: no library calls, and every value computed before a choice
// between two (so that the choice is a blend of two vectors, not a branch per element) ------------

// x = n·ln 2 + r with n = round(x / ln 2) and r ∈ [−ln 2 / 2, ln 2 / 2] (Cephes' expf): 2ⁿ from its
// exponent bits, and e^r − 1 = r + r²·P(r) by a degree-5 polynomial P, so that eˣ = 2ⁿ·(1 + (e^r − 1))
// and eˣ − 1 = 2ⁿ·(e^r − 1) + (2ⁿ − 1), the latter without the cancellation of eˣ − 1 near 0 (there
// n = 0). ln 2 comes in two parts, so that n·ln2_hi is exact. x is clamped to [−87, 88], where 2ⁿ
// stays a normal float: e⁻⁸⁷ ≈ 1.6e-38 stands for anything smaller and e⁸⁸ ≈ 1.7e38 for anything
// larger, which none of the callers can tell from 0 and ∞. A NaN x is the caller's to pass on.
struct ReducedExponent {
  float two_to_n, e_r_minus_1;
};

VQVAE2_ALWAYS_INLINE ReducedExponent reduce(float x) {
  const float clamped = x > -87.0f ? (x < 88.0f ? x : 88.0f) : -87.0f;  // NaN → −87
  const float round_shift = 12582912.0f;                                 // 1.5·2²³: adding it rounds to an integer
  const float n = (clamped * 1.44269504088896341f + round_shift) - round_shift;
  const float r = (clamped - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const int32_t exponent_bits = (static_cast<int32_t>(n) + 127) << 23;
  float two_to_n;
  std::memcpy(&two_to_n, &exponent_bits, sizeof two_to_n);
  return {two_to_n, p * (r * r) + r};
}

// eˣ; NaN gives NaN.
VQVAE2_ALWAYS_INLINE float exponential(float x) {
  const auto [two_to_n, e_r_minus_1] = reduce(x);
  const float e_x = two_to_n * (e_r_minus_1 + 1.0f);
  return x != x ? x : e_x;
}

// ELU: x for x > 0, eˣ − 1 otherwise; NaN gives NaN.
VQVAE2_ALWAYS_INLINE float elu_of(float x) {
  const auto [two_to_n, e_r_minus_1] = reduce(x);
  const float e_x_minus_1 = two_to_n * e_r_minus_1 + (two_to_n - 1.0f);
  return x > 0 || x != x ? x : e_x_minus_1;
}

// ∂elu/∂x = 1 for x > 0, eˣ otherwise.
VQVAE2_ALWAYS_INLINE float elu_slope(float x) {
  const float e_x = exponential(x);
  return x > 0 ? 1.0f : e_x;
}

// tanh (Cephes' tanhf): an odd polynomial for |x| < 0.625, else ±(1 − 2 / (e^{2|x|} + 1)).
VQVAE2_ALWAYS_INLINE float hyperbolic_tangent(float x) {
  const float z = x * x;
  const float small =
      ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z -
       3.33332819422e-1f) *
          z * x +
      x;
  const float magnitude = std::fabs(x);
  const float large = std::copysign(1.0f - 2.0f / (exponential(2.0f * magnitude) + 1.0f), x);
  return magnitude < 0.625f ? small : large;
}

// σ(x) = 1 / (1 + e⁻ˣ).
VQVAE2_ALWAYS_INLINE float logistic(float x) { return 1.0f / (1.0f + exponential(-x)); }

// ---- the loops, for float and for bfloat16 (as its bits), computing in float -----------------------

struct Floats {
  using Value = float;
  static float load(float v) { return v; }
  static float store(float v) { return v; }
};

struct BFloat16s {
  using Value = uint16_t;
  static float load(uint16_t v) { return widen_bfloat16(v); }
  static uint16_t store(float v) { return round_to_bfloat16(v); }
};

template <typename V>
VQVAE2_ALWAYS_INLINE void elu_loop(const typename V::Value* x, typename V::Value* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = V::store(elu_of(V::load(x[i])));
}

template <typename V>
VQVAE2_ALWAYS_INLINE void elu_gradient_loop(const typename V::Value* x, const typename V::Value* g,
                                            typename V::Value* gx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) gx[i] = V::store(V::load(g[i]) * elu_slope(V::load(x[i])));
}

template <typename V>
VQVAE2_ALWAYS_INLINE void gate_loop(const typename V::Value* a, const typename V::Value* b, typename V::Value* y,
                                    int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = V::store(hyperbolic_tangent(V::load(a[i])) * logistic(V::load(b[i])));
}

template <typename V>
VQVAE2_ALWAYS_INLINE void gate_gradient_loop(const typename V::Value* a, const typename V::Value* b,
                                             const typename V::Value* g, typename V::Value* ga,
                                             typename V::Value* gb, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float t = hyperbolic_tangent(V::load(a[i])), s = logistic(V::load(b[i])), gi = V::load(g[i]);
    ga[i] = V::store(gi * (s * (1.0f - t * t)));
    gb[i] = V::store(gi * (t * (s * (1.0f - s))));
  }
}

// The vectorised clones, one per loop and type.
VQVAE2_VECTOR_CLONES void elu_span(const float* x, float* y, int64_t n) { elu_loop<Floats>(x, y, n); }
VQVAE2_VECTOR_CLONES void elu_span(const uint16_t* x, uint16_t* y, int64_t n) { elu_loop<BFloat16s>(x, y, n); }
VQVAE2_VECTOR_CLONES void elu_gradient_span(const float* x, const float* g, float* gx, int64_t n) {
  elu_gradient_loop<Floats>(x, g, gx, n);
}
VQVAE2_VECTOR_CLONES void elu_gradient_span(const uint16_t* x, const uint16_t* g, uint16_t* gx, int64_t n) {
  elu_gradient_loop<BFloat16s>(x, g, gx, n);
}
VQVAE2_VECTOR_CLONES void gate_span(const float* a, const float* b, float* y, int64_t n) {
  gate_loop<Floats>(a, b, y, n);
}
VQVAE2_VECTOR_CLONES void gate_span(const uint16_t* a, const uint16_t* b, uint16_t* y, int64_t n) {
  gate_loop<BFloat16s>(a, b, y, n);
}
VQVAE2_VECTOR_CLONES void gate_gradient_span(const float* a, const float* b, const float* g, float* ga, float* gb,
                                             int64_t n) {
  gate_gradient_loop<Floats>(a, b, g, ga, gb, n);
}
VQVAE2_VECTOR_CLONES void gate_gradient_span(const uint16_t* a, const uint16_t* b, const uint16_t* g, uint16_t* ga,
                                             uint16_t* gb, int64_t n) {
  gate_gradient_loop<BFloat16s>(a, b, g, ga, gb, n);
}

// ---- tensors ---------------------------------------------------------------------------------------

// Calls fn(Value*) with Value = float or uint16_t (bfloat16's bits) for `type`: fn is a generic lambda
// taking a null pointer of the type to work in.
template <typename Fn>
void by_type(torch::ScalarType type, Fn&& fn) {
  if (type == torch::kFloat) {
    fn(static_cast<float*>(nullptr));
  } else {
    fn(static_cast<uint16_t*>(nullptr));
  }
}

// Runs span(pointers, n) over all elements of `iter` (its N tensors of Value, outputs first), on
// LibTorch's intra-op threads: iter.for_each is compiled into LibTorch with its thread pool (the
// header-only at::parallel_for would run on one thread here, in code built without OpenMP). Runs of
// elements adjacent in memory in every tensor go to the vectorised span at once, others one by one.
template <size_t N, typename Value, typename Span>
void for_each_span(at::TensorIterator& iter, const Span& span) {
  iter.for_each(
      [&](char** data, const int64_t* strides, int64_t size0, int64_t size1) {
        bool adjacent = true;
        for (size_t k = 0; k < N; ++k) adjacent = adjacent && strides[k] == static_cast<int64_t>(sizeof(Value));
        std::array<char*, N> p;
        for (int64_t j = 0; j < size1; ++j) {
          for (size_t k = 0; k < N; ++k) p[k] = data[k] + j * strides[N + k];
          if (adjacent) {
            span(p, size0);
            continue;
          }
          for (int64_t i = 0; i < size0; ++i) {
            span(p, 1);
            for (size_t k = 0; k < N; ++k) p[k] += strides[k];
          }
        }
      },
      int64_t{1} << 14);  // elements per task
}

template <typename Value>
Value* as(char* p) {
  return reinterpret_cast<Value*>(p);
}

struct EluFunction : torch::autograd::Function<EluFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x) {
    ctx->save_for_backward({x});
    auto y = at::empty_like(x);
    auto iter = at::TensorIteratorConfig().add_output(y).add_input(x).build();
    by_type(x.scalar_type(), [&](auto* tag) {
      using Value = std::remove_pointer_t<decltype(tag)>;
      for_each_span<2, Value>(iter, [](const std::array<char*, 2>& p, int64_t n) {
        elu_span(as<Value>(p[1]), as<Value>(p[0]), n);
      });
    });
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    if (!grads[0].defined()) return {torch::Tensor()};
    const auto x = ctx->get_saved_variables()[0];
    const auto g = grads[0].to(x.scalar_type());
    auto gx = at::empty_like(x);
    auto iter = at::TensorIteratorConfig().add_output(gx).add_input(x).add_input(g).build();
    by_type(x.scalar_type(), [&](auto* tag) {
      using Value = std::remove_pointer_t<decltype(tag)>;
      for_each_span<3, Value>(iter, [](const std::array<char*, 3>& p, int64_t n) {
        elu_gradient_span(as<Value>(p[1]), as<Value>(p[2]), as<Value>(p[0]), n);
      });
    });
    return {gx};
  }
};

struct GateFunction : torch::autograd::Function<GateFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, int64_t dim) {
    ctx->save_for_backward({x});
    ctx->saved_data["dim"] = dim;
    const auto halves = x.chunk(2, dim);
    auto y = at::empty_like(halves[0], at::MemoryFormat::Contiguous);
    auto iter = at::TensorIteratorConfig().add_output(y).add_input(halves[0]).add_input(halves[1]).build();
    by_type(x.scalar_type(), [&](auto* tag) {
      using Value = std::remove_pointer_t<decltype(tag)>;
      for_each_span<3, Value>(iter, [](const std::array<char*, 3>& p, int64_t n) {
        gate_span(as<Value>(p[1]), as<Value>(p[2]), as<Value>(p[0]), n);
      });
    });
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    if (!grads[0].defined()) return {torch::Tensor(), torch::Tensor()};
    const auto x = ctx->get_saved_variables()[0];
    const auto dim = ctx->saved_data["dim"].toInt();
    const auto g = grads[0].to(x.scalar_type());
    const auto halves = x.chunk(2, dim);
    auto gx = at::empty_like(x, at::MemoryFormat::Contiguous);
    const auto gradient_halves = gx.chunk(2, dim);
    auto iter = at::TensorIteratorConfig()
                    .add_output(gradient_halves[0])
                    .add_output(gradient_halves[1])
                    .add_input(halves[0])
                    .add_input(halves[1])
                    .add_input(g)
                    .build();
    by_type(x.scalar_type(), [&](auto* tag) {
      using Value = std::remove_pointer_t<decltype(tag)>;
      for_each_span<5, Value>(iter, [](const std::array<char*, 5>& p, int64_t n) {
        gate_gradient_span(as<Value>(p[2]), as<Value>(p[3]), as<Value>(p[4]), as<Value>(p[0]), as<Value>(p[1]), n);
      });
    });
    return {gx, torch::Tensor()};
  }
};

bool has_kernel(const torch::Tensor& x) {
  return x.device().is_cpu() && (x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kBFloat16);
}

}  // namespace

torch::Tensor elu(const torch::Tensor& x) {
  if (!has_kernel(x)) return torch::elu(x);
  return EluFunction::apply(x);
}

torch::Tensor gate(const torch::Tensor& x, int64_t dim) {
  VQVAE2_CHECK(x.dim() > 0, "the gate splits a tensor in halves along a dimension; got a scalar");
  dim = c10::maybe_wrap_dim(dim, x.dim());
  VQVAE2_CHECK(x.size(dim) % 2 == 0, "the gate splits dimension {} in halves, but its size is {}", dim, x.size(dim));
  if (!has_kernel(x)) {
    const auto halves = x.chunk(2, dim);
    return torch::tanh(halves[0]) * torch::sigmoid(halves[1]);
  }
  return GateFunction::apply(x, dim);
}

}  // namespace vqvae2
