// Curves to look at: a run folder's metrics.jsonl read back as series, drawn as SVG charts, and
// gathered with the configuration and the latest image grids into one self-contained report.html
// (inline SVG, PNGs as data: URIs, no scripts, fonts or style sheets from anywhere: it opens
// offline in any browser).
//
// Glossary: a *series* is one figure over training steps ("loss", "val_psnr", "usage[1]": an
// array figure, one value per level, becomes one series per level, level 0 = bottom); a *chart*
// is one panel with axes, ticks, a legend and one polyline per series; *pixel* coordinates are
// SVG user units, y growing downwards.
//
// What a line of metrics.jsonl may hold (training/train_loop.cpp writes it): training lines
// {"step", "epoch", "lr", "images_per_second", and the model's figures: "loss",
// "reconstruction_mse", "commitment_loss", "codebook_loss", "perplexity": [per level], "usage":
// [per level] for a VQ-VAE; "loss", "bits_per_code" for a prior}; evaluations {"event": "eval",
// "step", "epoch", "val_<figure>"...}; {"event": "skipped", "step", "reason"}. Any other numeric
// key (a future model's "elbo", "kl") is read and drawn too; lines that do not parse (a last line
// cut short by a kill) are counted and left out.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace vqvae2 {

// ---- reading the log ------------------------------------------------------------------------------

struct Series {
  std::vector<double> steps;
  std::vector<double> values;  // finite values only: a null (a NaN when logged) is left out
};

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

// ---- drawing: small pure functions the charts are made of -----------------------------------------

namespace plot {

// Maps values in [lo, hi] onto pixels [pixel_lo, pixel_hi] (pixel_hi < pixel_lo for a y axis),
// linearly or in log10 (then lo > 0).
struct Scale {
  double lo = 0, hi = 1;
  double pixel_lo = 0, pixel_hi = 1;
  bool log = false;

  double to_pixel(double value) const;
  double to_value(double pixel) const;  // the inverse of to_pixel
};

// Round numbers to label an axis: 1, 2 or 5 times a power of ten apart on a linear scale (about
// `target` of them), powers of ten (with 2 and 5 between them when the range spans a single decade)
// on a log scale. All lie in [lo, hi].
std::vector<double> ticks(const Scale& scale, int target = 5);

// A tick's label: as short as it can be without two ticks reading the same ("0.5", "2000", "1e-05").
std::string tick_label(double value);

// A scale over `values` for pixels [pixel_lo, pixel_hi]. Linear scales are widened to round ticks
// at both ends; log scales to the nearest 1, 2 or 5 times a power of ten. With `allow_log`, log is chosen when every value is
// positive and the largest is at least 10 times the smallest (losses falling over decades). A
// single value (or none) gets a range around it.
Scale fit_scale(const std::vector<double>& values, double pixel_lo, double pixel_hi, bool allow_log);

// At most about 2 * `buckets` points that draw the same line: the points are split into `buckets`
// runs of consecutive steps and each run keeps its lowest and highest value, in order. Returns the
// indices kept. With no more than 2 * buckets points, all of them.
std::vector<size_t> decimate(const std::vector<double>& values, size_t buckets);

// "x1,y1 x2,y2 ...": the polyline through (steps[i], values[i]), one decimal per coordinate;
// points a log scale cannot show (value <= 0) are left out.
std::string polyline_points(const std::vector<double>& steps, const std::vector<double>& values, const Scale& x,
                            const Scale& y);

// &, <, >, " and ' as XML entities.
std::string xml_escape(const std::string& text);

// One chart: series with their legend names and colours, drawn into a <svg> element.
struct Line {
  std::string name;   // the legend entry
  std::string run;    // data-run attribute (the run's name in comparisons)
  std::string key;    // data-key attribute: the series' key
  const Series* series = nullptr;
  std::string colour = "#1f77b4";
  std::string dash;   // SVG stroke-dasharray, empty for solid
  bool markers = false;  // a dot on every point (evaluations: few points)
};

struct ChartOptions {
  std::string title;
  std::string y_label;
  std::string x_label = "step";
  double width = 760;         // the whole chart, legend included
  double height = 300;
  bool allow_log = true;      // log y when the values span a decade or more
  bool include_zero = false;  // y axis from 0 (usage, throughput)
  size_t max_points = 1000;   // per line, after decimate()
  double legend_width = 0;    // 0: legend_width(lines)
  double top = -1;            // >= 0: nested at this y in a larger <svg>; else standalone (xmlns)
};

// One chart as an <svg> element; its legend lists every line, "(no data)" after those without
// points.
std::string chart_svg(const std::vector<Line>& lines, const ChartOptions& options);

// The room the legend takes beside the plot: its longest entry, within [80, 300] pixels.
double legend_width(const std::vector<Line>& lines);

// Its height: options.height, or more when the legend needs it.
double chart_height(const std::vector<Line>& lines, const ChartOptions& options);

// The categorical palette: colour i of 10, repeating.
std::string colour(size_t i);

}  // namespace plot

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
