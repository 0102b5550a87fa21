#include "vqvae2/models/wavenet.h"

#include "vqvae2/core/error.h"
#include "vqvae2/models/activation.h"

namespace vqvae2 {

namespace nn = torch::nn;

namespace {

nn::Conv1d conv(int64_t in, int64_t out, int64_t kernel, int64_t dilation = 1, int64_t padding = 0) {
  return nn::Conv1d(nn::Conv1dOptions(in, out, kernel).dilation(dilation).padding(padding));
}

// A 1×1 convolution applied to one position x [B, in] -> [B, out], as a matrix product (a Conv1d
// call on a length-1 sequence costs several times more).
torch::Tensor pointwise(const nn::Conv1d& conv, const torch::Tensor& x) {
  return torch::addmm(conv->bias, x, conv->weight.squeeze(2).t());
}

// [B, C, T] -> the same moved one step later in time (position 0 zero).
torch::Tensor shift_right(const torch::Tensor& x) {
  return torch::constant_pad_nd(x, {1, 0}, 0).slice(2, 0, x.size(2));
}

}  // namespace

int64_t WaveNetOptions::receptive_field() const {
  int64_t sum = 0;
  for (int64_t i = 0; i < layers(); ++i) sum += dilation(i);
  return 1 + (kernel - 1) * sum;
}

void WaveNetOptions::validate() const {
  VQVAE2_CHECK(level >= 0 && level < 8, "prior level must be in [0, 8), got {}", level);
  VQVAE2_CHECK(length >= 1 && length <= (int64_t{1} << 24), "code sequence length must be in [1, 2^24], got {}", length);
  VQVAE2_CHECK(codes >= 2 && codes <= 65535, "the prior's codebook size K must be in [2, 65535], got {}", codes);
  VQVAE2_CHECK(channels >= 1 && channels <= 8192 && gate_channels >= 1 && gate_channels <= 8192 && skip_channels >= 1 &&
                   skip_channels <= 8192,
               "WaveNet widths must be in [1, 8192], got residual {}, gate {}, skip {}", channels, gate_channels,
               skip_channels);
  VQVAE2_CHECK(kernel >= 2 && kernel <= 16, "WaveNet kernel must be in [2, 16], got {}", kernel);
  VQVAE2_CHECK(layers_per_cycle >= 1 && layers_per_cycle <= 20, "layers per dilation cycle must be in [1, 20], got {}",
               layers_per_cycle);
  VQVAE2_CHECK(cycles >= 1 && cycles <= 64, "dilation cycles must be in [1, 64], got {}", cycles);
  if (conditional) {
    VQVAE2_CHECK(condition_codes >= 1 && condition_codes <= 65535, "condition codebook size must be in [1, 65535], got {}",
                 condition_codes);
    VQVAE2_CHECK(condition_channels >= 1 && condition_channels <= 8192, "condition channels must be in [1, 8192], got {}",
                 condition_channels);
    VQVAE2_CHECK(condition_blocks >= 0 && condition_blocks <= 64, "condition blocks must be in [0, 64], got {}",
                 condition_blocks);
    VQVAE2_CHECK(condition_scale >= 1 && condition_scale <= 4096 && length % condition_scale == 0,
                 "the condition scale (stride to the level above) must be in [1, 4096] and divide the length {}, got {}",
                 length, condition_scale);
  }
}

WaveNetImpl::WaveNetImpl(const WaveNetOptions& options) : options_(options) {
  options_.validate();
  const auto R = options_.channels, G = options_.gate_channels, S = options_.skip_channels;
  embedding_ = register_module("embedding", nn::Embedding(options_.codes, R));
  for (int64_t i = 0; i < options_.layers(); ++i) {
    const auto name = std::to_string(i);
    dilated_.push_back(register_module("dilated" + name, conv(R, 2 * G, options_.kernel, options_.dilation(i))));
    if (options_.conditional) {
      condition_.push_back(register_module("condition" + name, conv(options_.condition_channels, 2 * G, 1)));
    }
    if (i + 1 < options_.layers()) residual_.push_back(register_module("residual" + name, conv(G, R, 1)));
    skip_.push_back(register_module("skip" + name, conv(G, S, 1)));
  }
  out1_ = register_module("out1", conv(S, S, 1));
  out2_ = register_module("out2", conv(S, options_.codes, 1));
  if (options_.conditional) {
    const auto Cc = options_.condition_channels;
    condition_embedding_ = register_module("condition_embedding", nn::Embedding(options_.condition_codes, Cc));
    for (int64_t b = 0; b < options_.condition_blocks; ++b) {
      const auto name = std::to_string(b);
      condition_blocks_.emplace_back(register_module("condition_block" + name + "_conv3", conv(Cc, Cc, 3, 1, 1)),
                                     register_module("condition_block" + name + "_conv1", conv(Cc, Cc, 1)));
    }
    const auto s = options_.condition_scale;
    condition_upsample_ = register_module(
        "condition_upsample", nn::ConvTranspose1d(nn::ConvTranspose1dOptions(Cc, Cc, /*kernel_size=*/s).stride(s)));
  }
}

void WaveNetImpl::check_inputs(const torch::Tensor& codes, const torch::Tensor& condition_codes) const {
  VQVAE2_CHECK(codes.dim() == 2 && codes.size(0) >= 1 && codes.size(1) >= 1,
               "the level-{} WaveNet expects codes [B, T], got {}", options_.level, shape_of(codes.sizes()));
  if (!options_.conditional) {
    VQVAE2_CHECK(!condition_codes.defined(), "the level-{} WaveNet is not conditional but was given condition codes",
                 options_.level);
    return;
  }
  VQVAE2_CHECK(condition_codes.defined(), "the level-{} WaveNet is conditional: give the level-{} codes too",
               options_.level, options_.level + 1);
  const auto s = options_.condition_scale;
  VQVAE2_CHECK(condition_codes.dim() == 2 && condition_codes.size(0) == codes.size(0) &&
                   condition_codes.size(1) * s == codes.size(1),
               "the level-{} WaveNet expects condition codes [{}, {}] for codes {} (scale {}), got {}", options_.level,
               codes.size(0), codes.size(1) / s, shape_of(codes.sizes()), s, shape_of(condition_codes.sizes()));
}

torch::Tensor WaveNetImpl::embed(const torch::Tensor& codes) {
  return embedding_(codes.to(torch::kLong)).permute({0, 2, 1});  // [B, T] -> [B, T, R] -> [B, R, T]
}

torch::Tensor WaveNetImpl::condition_features(const torch::Tensor& condition_codes) {
  if (!options_.conditional) return {};
  VQVAE2_CHECK(condition_codes.defined() && condition_codes.dim() == 2,
               "the level-{} WaveNet is conditional: give the level-{} codes [B, T'], got {}", options_.level,
               options_.level + 1, condition_codes.defined() ? shape_of(condition_codes.sizes()) : "nothing");
  const auto K = options_.condition_codes;
  VQVAE2_CHECK(condition_codes.numel() == 0 ||
                   (condition_codes.min().item<int64_t>() >= 0 && condition_codes.max().item<int64_t>() < K),
               "level-{} condition codes must lie in [0, {})", options_.level + 1, K);
  auto h = condition_embedding_(condition_codes.to(torch::kLong)).permute({0, 2, 1});  // [B, Cc, T/s]
  for (auto& [conv3, conv1] : condition_blocks_) h = h + conv1(torch::relu(conv3(torch::relu(h))));
  return condition_upsample_(h);  // [B, Cc, T]
}

torch::Tensor WaveNetImpl::head(const torch::Tensor& skip) { return out2_(torch::relu(out1_(torch::relu(skip)))); }

torch::Tensor WaveNetImpl::forward_embedded(const torch::Tensor& embedded, const torch::Tensor& condition) {
  VQVAE2_CHECK(embedded.dim() == 3 && embedded.size(1) == options_.channels,
               "WaveNet embeddings must be [B, {}, T], got {}", options_.channels, shape_of(embedded.sizes()));
  VQVAE2_CHECK(condition.defined() == options_.conditional &&
                   (!condition.defined() || (condition.dim() == 3 && condition.size(0) == embedded.size(0) &&
                                             condition.size(1) == options_.condition_channels &&
                                             condition.size(2) == embedded.size(2))),
               "the level-{} WaveNet needs {} condition, got {}", options_.level,
               options_.conditional ? fmt::format("a [B, {}, T]", options_.condition_channels) : std::string("no"),
               condition.defined() ? shape_of(condition.sizes()) : "none");
  auto x = shift_right(embedded);  // x_0[t] = e(c_{t-1})
  torch::Tensor skip;
  for (int64_t i = 0; i < options_.layers(); ++i) {
    const auto past = (options_.kernel - 1) * options_.dilation(i);
    auto a = dilated_[i](torch::constant_pad_nd(x, {past, 0}, 0));  // causal: taps t − m·d_i only
    if (options_.conditional) a = a + condition_[i](condition);
    const auto z = gate(a, /*dim=*/1);
    skip = skip.defined() ? skip + skip_[i](z) : skip_[i](z);
    if (i + 1 < options_.layers()) x = x + residual_[i](z);
  }
  return head(skip);
}

torch::Tensor WaveNetImpl::forward(const torch::Tensor& codes, const torch::Tensor& condition_codes) {
  check_inputs(codes, condition_codes);
  return forward_embedded(embed(codes), condition_features(condition_codes));
}

torch::Tensor WaveNetImpl::loss(const torch::Tensor& codes, const torch::Tensor& condition_codes) {
  return torch::nn::functional::cross_entropy(forward(codes, condition_codes), codes.to(torch::kLong));
}

// ---- incremental form -----------------------------------------------------------------------------

WaveNetImpl::State WaveNetImpl::begin(int64_t batch, int64_t length, const torch::Tensor& condition) {
  VQVAE2_CHECK(batch >= 1 && length >= 1, "sampling needs a positive batch and length, got {} and {}", batch, length);
  VQVAE2_CHECK(condition.defined() == options_.conditional &&
                   (!condition.defined() || (condition.dim() == 3 && condition.size(0) == batch &&
                                             condition.size(1) == options_.condition_channels &&
                                             condition.size(2) == length)),
               "the level-{} WaveNet needs {} condition for {} sequences of {} codes, got {}", options_.level,
               options_.conditional ? "a [B, Cc, T]" : "no", batch, length,
               condition.defined() ? shape_of(condition.sizes()) : "none");
  const auto weights = embedding_->weight;
  State state;
  state.batch = batch;
  state.length = length;
  state.input = torch::zeros({batch, options_.channels}, weights.options());
  for (int64_t i = 0; i < options_.layers(); ++i) {
    const auto size = (options_.kernel - 1) * options_.dilation(i) + 1;
    state.queues.push_back(torch::zeros({batch, options_.channels, size}, weights.options()));
    if (options_.conditional) state.condition.push_back(condition_[i](condition));  // V_i · h for every t at once
  }
  return state;
}

torch::Tensor WaveNetImpl::logits_step(State& state) {
  VQVAE2_CHECK(state.t < state.length, "the sequence of {} codes is complete", state.length);
  const auto t = state.t;
  const auto k = options_.kernel;
  const auto device = state.input.device();
  auto x = state.input;  // x_0[t], [B, R]
  torch::Tensor skip;
  for (int64_t i = 0; i < options_.layers(); ++i) {
    auto& queue = state.queues[i];
    const auto size = queue.size(2), d = options_.dilation(i);
    queue.select(2, t % size).copy_(x);
    // Taps j = 0 … k−1 of the convolution read x_i[t − (k−1−j)·d]; before the start the ring still
    // holds the zeros it began with (exactly the causal zero padding of forward()).
    std::vector<int64_t> slots(k);
    for (int64_t j = 0; j < k; ++j) slots[j] = ((t - (k - 1 - j) * d) % size + size) % size;
    const auto window = queue.index_select(2, torch::tensor(slots, torch::TensorOptions().device(device)));  // [B, R, k]
    const auto& conv = dilated_[i];
    auto a = torch::addmm(conv->bias, window.reshape({state.batch, -1}), conv->weight.reshape({conv->weight.size(0), -1}).t());
    if (options_.conditional) a = a + state.condition[i].select(2, t);
    const auto z = gate(a, /*dim=*/1);  // [B, G]
    skip = skip.defined() ? skip + pointwise(skip_[i], z) : pointwise(skip_[i], z);
    if (i + 1 < options_.layers()) x = x + pointwise(residual_[i], z);
  }
  return pointwise(out2_, torch::relu(pointwise(out1_, torch::relu(skip))));  // [B, K]
}

void WaveNetImpl::commit(State& state, const torch::Tensor& codes) {
  VQVAE2_CHECK(codes.dim() == 1 && codes.size(0) == state.batch, "commit expects codes [{}], got {}", state.batch,
               shape_of(codes.sizes()));
  state.input = embedding_(codes.to(torch::kLong));  // becomes x_0[t + 1]
  ++state.t;
}

// ---- presets --------------------------------------------------------------------------------------

WaveNetOptions wavenet_options(int64_t level, int64_t length, int64_t codes, WaveNetSize size) {
  WaveNetOptions o;
  o.level = level;
  o.length = length;
  o.codes = codes;
  if (size == WaveNetSize::kReference) {
    o.channels = 128;
    o.gate_channels = 128;
    o.skip_channels = 256;
    o.layers_per_cycle = 10;
    o.cycles = 3;
  }
  return o;
}

WaveNetOptions conditional_wavenet_options(int64_t level, int64_t length, int64_t codes, int64_t condition_codes,
                                           int64_t scale, WaveNetSize size) {
  auto o = wavenet_options(level, length, codes, size);
  o.conditional = true;
  o.condition_codes = condition_codes;
  o.condition_scale = scale;
  o.condition_channels = size == WaveNetSize::kReference ? 128 : 64;
  o.condition_blocks = size == WaveNetSize::kReference ? 4 : 2;
  return o;
}

}  // namespace vqvae2
