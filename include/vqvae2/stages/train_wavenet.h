// Stage 2 on audio (MISSION.md §1.6): a WaveNet over one level's code sequences, trained with
// cross-entropy on the code stores extract_codes wrote for an audio VQ-VAE. Reports held-out
// negative log-likelihood in bits per code and per audio sample. A store of audio codes holds each
// level as one-row maps (height 1, width T_l) and says "modality": "audio" in its header.
#pragma once

#include "vqvae2/data/code_store.h"
#include "vqvae2/models/wavenet.h"
#include "vqvae2/stages/train_prior.h"
#include "vqvae2/stages/trained.h"
#include "vqvae2/training/trainer.h"

#include <torch/torch.h>

#include <string>

namespace vqvae2 {

// True when the store holds an audio VQ-VAE's codes (its header says so).
bool is_audio_codes(const CodeStore& store);

// One level's code sequences and the level above's (undefined for the top), as WaveNets take them.
struct SequenceCodes {
  torch::Tensor codes;      // [N, T] int64
  torch::Tensor condition;  // [N, T / s] int64, or undefined
};
SequenceCodes sequence_codes(const CodeStore& store, int64_t level);

// Held-out NLL in nats per code of `prior` on `data` (eval mode, no gradients).
double evaluate_wavenet(WaveNet& prior, const SequenceCodes& data, int64_t batch_size, const torch::Device& device);

// A complete, valid configuration for the WaveNet of `level` of `codes`: unconditional at the top,
// conditioned on the level above below it; widths and schedule of `size`.
TrainWaveNetConfig wavenet_config_for(const PriorCodes& codes, int64_t level, PriorSize size);

// Trains in `run` (see open_training_run; kind WaveNetKind::name) on `codes`, which must be the
// codes `config` was made for. final_bits_per_dim is per audio sample.
TrainPriorResult train_wavenet(const TrainWaveNetConfig& config, const PriorCodes& codes, const TrainingRun& run,
                               const RunSettings& settings = {});
// The same, reading config.codes and opening `run_dir`.
TrainPriorResult train_wavenet(const TrainWaveNetConfig& config, const std::string& run_dir, bool resume,
                               const RunSettings& settings = {});

}  // namespace vqvae2
