// libFuzzer target: any bytes as a checkpoint file, through everything load<Kind> does
// before building a model: the container, the tensor index and data, the metadata, and the
// configuration with its validation. (Built with FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, which
// skips the CRC so mutated files get past it.)
#include "vqvae2/core/checkpoint.h"
#include "vqvae2/core/error.h"
#include "vqvae2/stages/trained.h"

#include <cstdint>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes(data, data + size);
  try {
    const auto contents = vqvae2::parse_checkpoint(bytes, "fuzz", "");
    const auto kind = contents.meta.value("kind", std::string());
    if (kind == "vqvae") {
      contents.meta.at("config").get<vqvae2::TrainVQVAEConfig>().validate();
    } else if (kind == "prior") {
      contents.meta.at("config").get<vqvae2::TrainPriorConfig>().validate();
    }
  } catch (const vqvae2::Error&) {
  } catch (const nlohmann::json::exception&) {
  }
  return 0;
}
