// Dropout (Srivastava et al. 2014) whose mask is a hash of (seed, element index): in training,
// y = x ⊙ m / (1 − p) with m_i = 1 when hash_seed(i) ≥ p·2³² (probability 1 − p), else 0; in
// evaluation, y = x. i is the element's index in x's logical (contiguous) order.
//
// Why not torch::nn::Dropout: on the CPU its mask comes from bernoulli_, one draw at a time from a
// single Mersenne twister on one thread, then a division and a product, each a pass over memory,
// and the mask is kept for the backward pass. In the reference top prior's training step
// (attention weights and gated units) bernoulli_ alone took 5.2 s of 61 s. A counter-based hash
// needs no shared state: y is made in one parallel pass, the same whatever the thread count, and
// the backward pass rebuilds the mask from the seed instead of storing it. The seed is one draw
// from LibTorch's default generator per call, so torch::manual_seed and the generator state that
// checkpoints keep still fix every mask.
//
// Not on the CPU (CUDA), `dropout` is torch::dropout.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace vqvae2 {

// y = x ⊙ m / (1 − p) for this seed, on the CPU; differentiable in x (∂L/∂x = ∂L/∂y ⊙ m / (1 − p)).
// Element i of the mask depends on (seed, i) alone.
torch::Tensor dropout_with_seed(const torch::Tensor& x, double p, uint64_t seed);

// The mask m / (1 − p) itself, shaped like `like`, in its dtype: every element 0 or 1 / (1 − p).
torch::Tensor dropout_mask(const torch::Tensor& like, double p, uint64_t seed);

// dropout_with_seed with a fresh seed from the default generator when `training` and p > 0; x
// itself otherwise.
torch::Tensor dropout(const torch::Tensor& x, double p, bool training);

// The module form, a drop-in for torch::nn::Dropout (no parameters or buffers, so checkpoints
// written with either read the same).
class DropoutImpl : public torch::nn::Module {
 public:
  explicit DropoutImpl(double p = 0.5);
  torch::Tensor forward(const torch::Tensor& x);
  double p() const { return p_; }

 private:
  double p_;
};
TORCH_MODULE(Dropout);

}  // namespace vqvae2
