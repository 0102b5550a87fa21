// The priors' elementwise activations, each one pass over memory forward and one backward.
//
// A prior's layer applies ELU four or five times and the gate tanh(a) ⊙ σ(b) once or twice. Composed
// from LibTorch's operators, the gate is three passes forward (tanh, sigmoid, their product) and four
// backward, and in bfloat16 every pass converts each element to float and back. Here each is one
// vectorised loop (AVX-512, AVX2 or baseline, picked for the CPU at load time) over float or
// bfloat16 tensors of any layout, computing in float, on LibTorch's intra-op threads. Forward and
// backward together, on the 2-core Zen 5 machine (`vqvae2 bench kernels`): ELU on 4×256×64×64, 1.4 ms
// against LibTorch's 2.9 (fp32) and 2.1 against 3.7 (bf16); the gate on 4×512×64×64, 4.0 ms against
// 11.8 (fp32) and 4.9 against 10.3 (bf16). Other types and devices fall back to LibTorch's operators.
//
// The exponential inside them is Cephes' expf (a polynomial on x − n·ln 2, scaled by 2ⁿ). ELU and the
// gate built on it keep their relative precision near 0 and are within 2.4e-7 of the exact values
// (relatively, above 1 in magnitude; tests/activation_test.cpp), and, made of IEEE operations alone
// in a fixed order, give the same bits for every position of a map and on every CPU, which the cached
// samplers rely on.
#pragma once

#include <torch/torch.h>

namespace vqvae2 {

// ELU with α = 1: y = x for x > 0, eˣ − 1 otherwise. Its gradient comes from the output alone:
// ∂y/∂x = 1 for y > 0, y + 1 = eˣ otherwise.
torch::Tensor elu(const torch::Tensor& x);

// y = tanh(a) ⊙ σ(b), with [a, b] = x split in halves along `dim`. Gradients, with t = tanh(a) and
// s = σ(b): ∂L/∂a = ∂L/∂y ⊙ s ⊙ (1 − t²), ∂L/∂b = ∂L/∂y ⊙ t ⊙ s ⊙ (1 − s), recomputed from x.
torch::Tensor gate(const torch::Tensor& x, int64_t dim = 1);

}  // namespace vqvae2
