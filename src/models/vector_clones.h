// Private to the library: how its hand-vectorised CPU loops are compiled.
#pragma once

// VQVAE2_VECTOR_CLONES before a function compiles it three times on x86-64 with GCC: for AVX-512
// (x86-64-v4, GCC 11 and later), for AVX2 and for the baseline; the loader picks one for the CPU.
// LibTorch's own kernels dispatch the same way at run time; the library itself is compiled for the
// baseline only. The loops it marks do the same IEEE operations in every lane and in every clone
// (files with sums of products are compiled with -ffp-contract=off, see CMakeLists.txt: no fused
// multiply-add in one clone or lane and not in another), so every clone computes the same bits.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#define VQVAE2_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#elif defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VQVAE2_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define VQVAE2_VECTOR_CLONES
#endif

#include <c10/util/BFloat16.h>

#include <cstdint>
#include <cstring>

namespace vqvae2 {

// bfloat16 is the upper half of a float's bits. These two convert without branches, so that loops
// over bfloat16 arrays (as uint16_t) vectorise like loops over floats. Tensors of c10::BFloat16 are
// read and written as arrays of uint16_t, which needs:
static_assert(sizeof(c10::BFloat16) == sizeof(uint16_t), "c10::BFloat16 holds its 16 bits and nothing else");

inline float widen_bfloat16(uint16_t bits) {
  const uint32_t widened = static_cast<uint32_t>(bits) << 16;
  float x;
  std::memcpy(&x, &widened, sizeof x);
  return x;
}

// Rounds to the nearest bfloat16, ties to even, as c10::BFloat16 does (NaN becomes 0x7FC0).
inline uint16_t round_to_bfloat16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  const auto rounded = static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
  return x != x ? uint16_t{0x7FC0} : rounded;
}

}  // namespace vqvae2
