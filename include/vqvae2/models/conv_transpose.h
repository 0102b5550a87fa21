// The decoders' ×2 upsampling layer: a 4×4 transposed convolution with stride 2 and padding 1, the
// same function and parameters as torch::nn::ConvTranspose2d(in, out, 4).stride(2).padding(1), run
// as an ordinary convolution.
//
// Why: LibTorch 1.13 runs transposed convolutions on the CPU through its slow path (im2col-style GEMM,
// then col2im scattering into a zeroed buffer, forward and backward); only ordinary convolutions go
// to oneDNN. In a profile of our 256×256, batch-4 fp32 step (AMD EPYC Zen 5, 2 threads) their
// forward passes alone took 128 of about 940 ms, their backward passes more.
//
// The identity: output pixel (2i+a, 2j+b), phase (a, b) ∈ {0,1}², gathers inputs x[i-1..i+1,
// j-1..j+1] through the kernel taps with 2·i_in − 1 + k = 2i + a, i.e. per window row r ∈ {0,1,2}
// (input row i−1+r):
//   phase a = 0: r = 0 → tap k = 3, r = 1 → k = 1, r = 2 → none
//   phase a = 1: r = 0 → none,      r = 1 → k = 2, r = 2 → k = 0
// and the same for columns. So y = PixelShuffle₂(conv3×3(x, W₃, padding 1)) with
//   W₃[4o + 2a + b, c, r, s] = W[c, o, k(a, r), k(b, s)]   (0 where "none"),
// a [4·out, in, 3, 3] weight gathered from W [in, out, 4, 4] on every forward pass, so gradients reach
// W through the gather. It does 9/4 of the transposed convolution's multiply-adds (the zero taps),
// but on oneDNN, in the channels-last layout its kernels run fastest; the result is NCHW again.
//
// Glossary: B = batch, in / out = input / output channels, H × W = input side.
#pragma once

#include <torch/torch.h>

namespace vqvae2 {

class DoublingConvTransposeImpl : public torch::nn::Module {
 public:
  // Parameters "weight" [in, out, 4, 4] and "bias" [out], initialised as torch::nn::ConvTranspose2d
  // initialises them (and from the same random numbers), so checkpoints of either load into the other.
  DoublingConvTransposeImpl(int64_t in, int64_t out);
  torch::Tensor forward(const torch::Tensor& x);  // [B, in, H, W] -> [B, out, 2H, 2W]
  torch::Tensor phase_weight() const;             // W₃ [4·out, in, 3, 3]
  const torch::Tensor& weight() const { return weight_; }
  const torch::Tensor& bias() const { return bias_; }

 private:
  torch::Tensor weight_, bias_;
};
TORCH_MODULE(DoublingConvTranspose);

}  // namespace vqvae2
