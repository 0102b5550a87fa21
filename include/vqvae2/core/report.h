// Curves to look at: a run folder's metrics.jsonl read back as series, drawn as SVG charts (plot.h),
// and gathered with the configuration and the latest image grids into one self-contained report.html
// (inline SVG, PNGs as data: URIs, no scripts, fonts or style sheets from anywhere: it opens
// offline in any browser).
//
// Glossary: a *series* is one figure over training steps ("loss", "val_psnr", "usage[1]": an
// array figure, one value per level, becomes one series per level, level 0 = bottom); a *chart*
// is one panel with axes, ticks, a legend and one polyline per series; *pixel* coordinates are
// SVG user units, y growing downwards.
//
// What a line of metrics.jsonl may hold (training/trainer.cpp writes it): training lines
// {"step", "epoch", "lr", "images_per_second", and the model's figures: "loss",
// "reconstruction_mse", "commitment_loss", "codebook_loss", "perplexity": [per level], "usage":
// [per level] for a VQ-VAE; "loss", "bits_per_code" for a prior}; evaluations {"event": "eval",
// "step", "epoch", "val_<figure>"...}; {"event": "skipped", "step", "reason"}. Any other numeric
// key (a future model's "elbo", "kl") is read and drawn too; lines that do not parse (a last line
// cut short by a kill) are counted and left out.
#pragma once

#include "vqvae2/core/plot.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace vqvae2 {

// ---- reading the log ------------------------------------------------------------------------------

struct MetricsHistory {
  std::map<std::string, Series> series;  // by key: "loss", "val_mse", "usage[0]", ...
  std::vector<int64_t> skipped_steps;    // steps of {"event": "skipped"} lines
  int64_t lines = 0;                     // lines read, blank ones excepted
  int64_t unreadable_lines = 0;          // not a JSON object with a numeric "step"
  int64_t last_step = -1;
  nlohmann::json last_evaluation;        // the last {"event": "eval"} line, or null

  bool has(const std::string& key) const { return series.count(key) > 0; }
};

// Reads a metrics.jsonl. Throws vqvae2::Error when the file cannot be read.
MetricsHistory read_metrics(const std::string& path);

// The figure a comparison of runs of this kind shows by default: held-out MSE for a VQ-VAE,
// held-out bits per code for a prior, else the first of val_bits_per_dim, val_loss, loss present
// (empty if none is).
std::string headline_key(const MetricsHistory& history);

// ---- reports and comparisons ----------------------------------------------------------------------

// Writes <run_dir>/report.html (atomically) and returns its path: a summary of the latest
// evaluation, one chart per family of figures (losses; reconstruction MSE; PSNR; per-level code
// usage; per-level perplexity; NLL in bits per code and per dimension; images per second; the
// learning rate if it changes; any other figure by name; a series that is zero throughout, like the
// EMA quantizer's codebook loss, is left out), <run_dir>/config.json pretty-printed, and the newest PNG of each kind
// in <run_dir>/grids/ ("reconstructions-000300.png" and "reconstructions-000600.png" are one kind;
// the highest step wins) embedded as data: URIs. Throws vqvae2::Error if run_dir is not a folder.
std::string write_report(const std::string& run_dir);

// Writes one SVG comparing runs: one chart per key, one colour per run, a legend with the runs'
// names (their folder names, or their paths where two folders share a name); the panels stacked,
// with their plot areas aligned, each scaled as its figure is in the report. A key names a series
// ("val_mse", "usage[0]") or an array figure ("usage": every level, told apart by dashes). With no
// keys, the headline_key() of each run. Throws vqvae2::Error (listing the keys there are) when no
// run has a key asked for, or a run folder has no metrics.jsonl.
void write_plot(const std::vector<std::string>& run_dirs, const std::vector<std::string>& keys,
                const std::string& out_svg);

}  // namespace vqvae2
