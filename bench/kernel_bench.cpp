// `vqvae2 bench kernels`: the priors' own elementwise kernels (models/dropout.h, models/activation.h)
// against the LibTorch operators they replace, on the shapes of the reference-width bottom prior.
#include "bench.h"

#include "vqvae2/core/device.h"
#include "vqvae2/core/error.h"
#include "vqvae2/models/activation.h"
#include "vqvae2/models/dropout.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace vqvae2::bench {

namespace {

// Milliseconds per call: the median over the timed rounds of `calls` calls each. A single call is
// about a millisecond, shorter than the scheduler's noise, hence the rounds.
double milliseconds_per_call(const BenchOptions& options, const std::function<void()>& fn) {
  constexpr int calls = 20;
  const double seconds_per_round = time_median(options, torch::kCPU, [&] {
    for (int i = 0; i < calls; ++i) fn();
  });
  return 1e3 * seconds_per_round / calls;
}

// Runs `op` on a fresh leaf of x's values and sends `upstream` back through it.
void forward_backward(const torch::Tensor& x, const torch::Tensor& upstream,
                      const std::function<torch::Tensor(const torch::Tensor&)>& op) {
  op(x.detach().requires_grad_()).backward(upstream);
}

struct KernelCase {
  std::string op;
  std::vector<int64_t> input_shape, output_shape;
  // Given the input and a gradient for the output (where the case has a backward pass).
  std::function<void(const torch::Tensor&, const torch::Tensor&)> ours, libtorch;
};

}  // namespace

void kernels(const BenchOptions& options, std::ostream& out) {
  VQVAE2_CHECK(parse_device(options.device).is_cpu(),
               "bench kernels times the CPU kernels of models/dropout.h and models/activation.h (on device {} they "
               "are LibTorch's own operators); run it with --device cpu",
               options.device);
  const auto libtorch_gate = [](const torch::Tensor& v) {
    const auto halves = v.chunk(2, 1);
    return torch::tanh(halves[0]) * torch::sigmoid(halves[1]);
  };
  const std::vector<int64_t> map = {4, 256, 64, 64}, gate_input = {4, 512, 64, 64};  // the bottom prior's
  uint64_t seed = 0;  // a fresh seed per call, as in training
  const std::vector<KernelCase> cases = {
      {"dropout p=0.1, forward", map, map,
       [&](const torch::Tensor& x, const torch::Tensor&) { dropout_with_seed(x, 0.1, ++seed); },
       [](const torch::Tensor& x, const torch::Tensor&) { torch::dropout(x, 0.1, /*train=*/true); }},
      {"ELU, forward + backward", map, map,
       [](const torch::Tensor& x, const torch::Tensor& g) {
         forward_backward(x, g, [](const torch::Tensor& v) { return vqvae2::elu(v); });
       },
       [](const torch::Tensor& x, const torch::Tensor& g) {
         forward_backward(x, g, [](const torch::Tensor& v) { return torch::elu(v); });
       }},
      {"gate tanh(a)*sigmoid(b), forward + backward", gate_input, map,
       [](const torch::Tensor& x, const torch::Tensor& g) {
         forward_backward(x, g, [](const torch::Tensor& v) { return gate(v, 1); });
       },
       [&](const torch::Tensor& x, const torch::Tensor& g) { forward_backward(x, g, libtorch_gate); }},
  };
  out << fmt::format("The priors' elementwise kernels against the LibTorch operators they replace, cpu ({} LibTorch "
                     "threads); ms per call, median of {} rounds of 20 calls\n",
                     at::get_num_threads(), std::max<int64_t>(1, options.iterations));
  out << "| op | shape | dtype | vqvae2 ms | LibTorch ms | LibTorch / vqvae2 |\n|---|---|---|---|---|---|\n";
  for (const auto& c : cases) {
    for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {
      torch::manual_seed(0);
      const auto x = torch::randn(c.input_shape).to(dtype), upstream = torch::randn(c.output_shape).to(dtype);
      const double ours = milliseconds_per_call(options, [&] { c.ours(x, upstream); });
      const double theirs = milliseconds_per_call(options, [&] { c.libtorch(x, upstream); });
      out << fmt::format("| {} | {} | {} | {:.2f} | {:.2f} | {:.2f}x |\n", c.op, fmt::join(c.input_shape, "x"),
                         dtype == torch::kFloat ? "fp32" : "bf16", ours, theirs, theirs / ours);
      out.flush();
    }
  }
}

}  // namespace vqvae2::bench
