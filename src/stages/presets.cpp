#include "vqvae2/stages/presets.h"

#include "vqvae2/core/error.h"

namespace vqvae2 {

std::vector<std::string> preset_names() { return {"mnist", "small", "reference"}; }

TrainVQVAEConfig vqvae_preset(const std::string& name) {
  TrainVQVAEConfig config;  // the struct defaults are the reference model
  if (name == "reference") {
    config.data.image_size = config.model.image_size = 256;
    config.data.channels = config.model.channels = 3;
    config.train.batch_size = 32;
    config.train.epochs = 100;
  } else if (name == "small") {
    config.data.image_size = config.model.image_size = 64;
    config.data.channels = config.model.channels = 3;
    config.train.batch_size = 32;
    config.train.epochs = 20;
  } else if (name == "mnist") {
    config.data.image_size = config.model.image_size = 32;
    config.data.channels = config.model.channels = 1;
    config.model.hidden = 64;
    config.model.res_channels = 32;
    config.model.strides = {2, 2};  // bottom 16×16, top 8×8
    config.model.codes = {128};
    config.model.code_dims = {32};
    config.train.batch_size = 64;
    config.train.epochs = 3;
    config.train.learning_rate = 1e-3;
    config.train.checkpoint_every = 200;
  } else {
    fail("unknown preset '{}'; choose one of {}", name, fmt::join(preset_names(), ", "));
  }
  // Restart a code once it receives less than one vector per batch on average: without this most of
  // the codebook never wins a nearest-neighbour contest (measured on MNIST: 26% / 2% of the codes
  // used per level after 3 epochs without restarts, 87% / 89% with them).
  config.model.quantizer.dead_code_threshold = 1.0;
  return config;
}

}  // namespace vqvae2
