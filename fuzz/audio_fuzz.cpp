// libFuzzer target: any bytes as an audio file, decoded through libsndfile from memory
// (sf_open_virtual), mixed to mono and resampled. Every input must either decode or raise
// vqvae2::Error; crashes, hangs, leaks and sanitizer reports are bugs.
#include "vqvae2/core/error.h"
#include "vqvae2/data/audio.h"

#include <cstdint>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes(data, data + size);
  try {
    // A 1 M sample cap keeps each run fast (and refuses decompression bombs); the code paths are
    // the same at any size.
    const auto audio = vqvae2::decode_audio(bytes, "fuzz", /*max_samples=*/1 << 20);
    const auto channels = audio.samples.size(0), frames = audio.samples.size(1);
    if (channels < 1 || frames < 1 || audio.samples.abs().max().item<float>() > 1) __builtin_trap();
    // Resample a short prefix to 16 kHz: any accepted rate must work.
    const auto mono = vqvae2::to_mono(audio.samples.slice(1, 0, 4096));
    const auto resampled = vqvae2::resample(mono, audio.sample_rate, 16000);
    const auto expected = (mono.size(0) * 16000 + audio.sample_rate - 1) / audio.sample_rate;
    if (resampled.size(0) != expected || !torch::isfinite(resampled).all().item<bool>()) __builtin_trap();
  } catch (const vqvae2::Error&) {
  }
  return 0;
}
