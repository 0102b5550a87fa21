#include "vqvae2/core/report.h"

#include "vqvae2/core/error.h"
#include "vqvae2/core/files.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace vqvae2 {

namespace fs = std::filesystem;

namespace {

// Counts and bookkeeping, not figures to draw.
bool is_bookkeeping(const std::string& key) {
  static const std::set<std::string> keys = {"step", "epoch", "val_epoch", "val_images", "val_codes"};
  return keys.count(key) > 0;
}

void add_point(MetricsHistory& history, const std::string& key, double step, const nlohmann::json& value) {
  if (!value.is_number()) return;
  const auto v = value.get<double>();
  if (!std::isfinite(v)) return;
  auto& series = history.series[key];
  series.steps.push_back(step);
  series.values.push_back(v);
}

}  // namespace

MetricsHistory read_metrics(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  VQVAE2_CHECK(in.good(), "cannot read metrics log '{}': {}", path, std::strerror(errno));
  MetricsHistory history;
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ++history.lines;
    const auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (record.is_discarded() || !record.is_object() || !record.contains("step") || !record["step"].is_number()) {
      ++history.unreadable_lines;
      continue;
    }
    const auto step = record["step"].get<double>();
    history.last_step = std::max(history.last_step, static_cast<int64_t>(step));
    const auto event = record.contains("event") && record["event"].is_string() ? record["event"].get<std::string>() : "";
    if (event == "skipped") {
      history.skipped_steps.push_back(static_cast<int64_t>(step));
      continue;
    }
    if (event == "eval") history.last_evaluation = record;
    for (const auto& [key, value] : record.items()) {
      if (is_bookkeeping(key)) continue;
      if (value.is_array()) {
        for (size_t i = 0; i < value.size(); ++i) add_point(history, fmt::format("{}[{}]", key, i), step, value[i]);
      } else {
        add_point(history, key, step, value);
      }
    }
  }
  return history;
}

std::string headline_key(const MetricsHistory& history) {
  for (const auto* key : {"val_mse", "val_bits_per_code", "val_bits_per_dim", "val_loss", "loss"}) {
    if (history.has(key)) return key;
  }
  return "";
}

// ---- the report -----------------------------------------------------------------------------------

namespace {

// "val_usage[1]" -> "usage": the figure a series belongs to, whether trained on or held out.
std::string base_of(const std::string& key) {
  auto base = key.rfind("val_", 0) == 0 ? key.substr(4) : key;
  const auto bracket = base.find('[');
  return bracket == std::string::npos ? base : base.substr(0, bracket);
}

struct Family {
  std::string title, y_label;
  std::vector<std::string> bases;
  bool allow_log = true;
  bool include_zero = false;
  bool only_if_varying = false;  // a constant learning rate is not worth a chart
};

const std::vector<Family>& families() {
  static const std::vector<Family> list = {
      {"Loss", "loss", {"loss", "commitment_loss", "codebook_loss", "nll_nats"}},
      {"Reconstruction error", "MSE (pixels in [-1, 1])", {"reconstruction_mse", "mse"}},
      {"Reconstruction PSNR", "PSNR (dB)", {"psnr"}, false},
      {"Code usage per level (0 = bottom)", "fraction of codes used", {"usage"}, false, true},
      {"Codebook perplexity per level (0 = bottom)", "perplexity", {"perplexity"}},
      {"NLL per code", "bits per code", {"bits_per_code"}},
      {"NLL per image dimension", "bits per dimension", {"bits_per_dim"}},
      {"Throughput", "images per second", {"images_per_second"}, false, true},
      {"Learning rate", "learning rate", {"lr"}, true, false, true},
  };
  return list;
}

// Series order within a chart: training before held-out, then the family's order, then level.
bool series_before(const std::string& a, const std::string& b, const std::vector<std::string>& bases) {
  const auto rank = [&](const std::string& key) {
    const auto base = base_of(key);
    const auto at = std::find(bases.begin(), bases.end(), base) - bases.begin();
    return std::make_tuple(key.rfind("val_", 0) == 0, at, key);
  };
  return rank(a) < rank(b);
}

bool varies(const Series& s) {
  return !s.values.empty() && *std::max_element(s.values.begin(), s.values.end()) !=
                                  *std::min_element(s.values.begin(), s.values.end());
}

struct Chart {
  std::vector<plot::Line> lines;
  plot::ChartOptions options;
};

Chart chart_for(const MetricsHistory& history, const Family& family, std::vector<std::string> keys) {
  std::sort(keys.begin(), keys.end(),
            [&](const std::string& a, const std::string& b) { return series_before(a, b, family.bases); });
  // A figure and its held-out twin ("usage[0]", "val_usage[0]") share a colour; the held-out one
  // is dashed, with a dot at each evaluation.
  std::vector<std::string> figures;
  Chart chart;
  for (const auto& key : keys) {
    const bool held_out = key.rfind("val_", 0) == 0;
    const auto figure = held_out ? key.substr(4) : key;
    auto at = std::find(figures.begin(), figures.end(), figure);
    if (at == figures.end()) at = figures.insert(figures.end(), figure);
    const auto colour = plot::colour(static_cast<size_t>(at - figures.begin()));
    chart.lines.push_back({key, "", key, &history.series.at(key), colour, held_out ? "5,3" : "", held_out});
  }
  chart.options.title = family.title;
  chart.options.y_label = family.y_label;
  chart.options.allow_log = family.allow_log;
  chart.options.include_zero = family.include_zero;
  return chart;
}

std::string base64(const std::vector<uint8_t>& bytes) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const uint32_t n = (uint32_t(bytes[i]) << 16) | (i + 1 < bytes.size() ? uint32_t(bytes[i + 1]) << 8 : 0) |
                       (i + 2 < bytes.size() ? uint32_t(bytes[i + 2]) : 0);
    out += alphabet[(n >> 18) & 63];
    out += alphabet[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? alphabet[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? alphabet[n & 63] : '=';
  }
  return out;
}

// The newest PNG of each kind in <run>/grids: "<kind>-<step>.png", the highest step wins.
std::map<std::string, fs::path> newest_grids(const fs::path& folder) {
  std::map<std::string, std::pair<int64_t, fs::path>> newest;
  std::error_code error;
  if (!fs::is_directory(folder, error)) return {};
  for (const auto& entry : fs::directory_iterator(folder, error)) {
    if (!entry.is_regular_file(error) || entry.path().extension() != ".png") continue;
    const auto stem = entry.path().stem().string();
    const auto dash = stem.find_last_of('-');
    std::string kind = stem;
    int64_t step = -1;
    if (dash != std::string::npos && dash + 1 < stem.size() &&
        stem.find_first_not_of("0123456789", dash + 1) == std::string::npos && stem.size() - dash <= 18) {
      kind = stem.substr(0, dash);
      step = std::stoll(stem.substr(dash + 1));
    }
    auto& best = newest[kind];
    if (best.second.empty() || step > best.first || (step == best.first && entry.path() > best.second)) {
      best = {step, entry.path()};
    }
  }
  std::map<std::string, fs::path> result;
  for (const auto& [kind, best] : newest) result[kind] = best.second;
  return result;
}

std::string format_figure(const nlohmann::json& value) {
  if (value.is_number_integer()) return fmt::format("{}", value.get<int64_t>());
  if (value.is_number()) return fmt::format("{:.6g}", value.get<double>());
  if (value.is_array()) {
    std::vector<std::string> parts;
    for (const auto& v : value) parts.push_back(format_figure(v));
    return fmt::format("{}", fmt::join(parts, " / "));
  }
  return value.dump();
}

std::string run_name(const std::string& run_dir) {
  auto path = fs::absolute(run_dir).lexically_normal();
  if (path.filename().empty()) path = path.parent_path();
  return path.filename().string();
}

constexpr const char* kStyle =
    "body{font-family:sans-serif;margin:24px;color:#222;max-width:1100px}"
    "h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}"
    "table{border-collapse:collapse}td,th{padding:3px 10px;text-align:left;border-bottom:1px solid #eee}"
    "td.n{font-family:monospace}pre{background:#f6f6f6;padding:10px;overflow:auto;font-size:12px}"
    "svg{display:block;margin:10px 0}figure{display:inline-block;margin:0 16px 16px 0}"
    "img{image-rendering:pixelated;max-width:100%;border:1px solid #ddd}figcaption{font-size:12px;color:#555}";

}  // namespace

std::string write_report(const std::string& run_dir) {
  const fs::path root(run_dir);
  std::error_code error;
  VQVAE2_CHECK(fs::is_directory(root, error), "'{}' is not a run folder (the --out of a training command)", run_dir);
  const auto name = run_name(run_dir);

  MetricsHistory history;
  const auto metrics_path = root / "metrics.jsonl";
  const bool have_metrics = fs::exists(metrics_path, error);
  if (have_metrics) history = read_metrics(metrics_path.string());

  nlohmann::json config;
  std::string config_text;
  const auto config_path = root / "config.json";
  if (fs::exists(config_path, error)) {
    const auto bytes = read_file(config_path.string());
    config_text.assign(bytes.begin(), bytes.end());
    config = nlohmann::json::parse(config_text, nullptr, /*allow_exceptions=*/false);
    if (!config.is_discarded()) config_text = config.dump(2);
  }
  const auto kind = config.is_object() && config.contains("kind") && config["kind"].is_string()
                        ? config["kind"].get<std::string>()
                        : std::string("run");

  std::string html = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n";
  html += fmt::format("<title>{} — vqvae2 {}</title>\n<style>{}</style>\n</head>\n<body>\n", plot::xml_escape(name),
                      plot::xml_escape(kind), kStyle);
  html += fmt::format("<h1>{} <small>(vqvae2 {})</small></h1>\n", plot::xml_escape(name), plot::xml_escape(kind));

  // Summary: where the run is and what its last evaluation said.
  html += "<table class=\"summary\">\n";
  const auto row = [&](const std::string& what, const std::string& value) {
    html += fmt::format("<tr><th>{}</th><td class=\"n\">{}</td></tr>\n", plot::xml_escape(what), plot::xml_escape(value));
  };
  row("last step", history.last_step >= 0 ? std::to_string(history.last_step) : "none yet");
  if (history.last_evaluation.is_object()) {
    row("last evaluation at step", format_figure(history.last_evaluation["step"]));
    for (const auto& [key, value] : history.last_evaluation.items()) {
      if (key.rfind("val_", 0) == 0 && (value.is_number() || value.is_array())) row(key, format_figure(value));
    }
  }
  if (!history.skipped_steps.empty()) {
    row("steps skipped (non-finite loss)", fmt::format("{} (first at step {})", history.skipped_steps.size(),
                                                       history.skipped_steps.front()));
  }
  if (history.unreadable_lines > 0) row("unreadable lines in metrics.jsonl", std::to_string(history.unreadable_lines));
  html += "</table>\n";

  // Curves: one chart per family, then one per figure no family claims.
  html += "<h2>Curves</h2>\n";
  if (!have_metrics) html += "<p>No metrics.jsonl yet.</p>\n";
  std::set<std::string> drawn;
  std::vector<Chart> charts;
  const auto draw = [&](const Family& family) {
    std::vector<std::string> keys;
    for (const auto& [key, series] : history.series) {
      if (drawn.count(key) || series.values.empty()) continue;
      if (std::all_of(series.values.begin(), series.values.end(), [](double v) { return v == 0; })) {
        drawn.insert(key);  // zero throughout: the EMA quantizer's codebook loss
        continue;
      }
      if (std::find(family.bases.begin(), family.bases.end(), base_of(key)) != family.bases.end()) keys.push_back(key);
    }
    if (keys.empty()) return;
    if (family.only_if_varying &&
        std::none_of(keys.begin(), keys.end(), [&](const std::string& k) { return varies(history.series.at(k)); })) {
      drawn.insert(keys.begin(), keys.end());
      return;
    }
    drawn.insert(keys.begin(), keys.end());
    charts.push_back(chart_for(history, family, keys));
  };
  for (const auto& family : families()) draw(family);
  for (const auto& [key, series] : history.series) {
    if (drawn.count(key)) continue;
    const auto base = base_of(key);
    draw({base, base, {base}});
  }
  double legend = 0;  // the same for every chart, so that their plot areas line up
  for (const auto& chart : charts) legend = std::max(legend, plot::legend_width(chart.lines));
  for (auto& chart : charts) {
    chart.options.legend_width = legend;
    html += plot::chart_svg(chart.lines, chart.options);
  }

  // Grids: the newest of each kind, embedded.
  const auto grids = newest_grids(root / "grids");
  if (!grids.empty()) {
    html += "<h2>Latest grids</h2>\n";
    for (const auto& [grid_kind, path] : grids) {
      html += fmt::format(
          "<figure><img alt=\"{}\" src=\"data:image/png;base64,{}\"/><figcaption>{}</figcaption></figure>\n",
          plot::xml_escape(grid_kind), base64(read_file(path.string())), plot::xml_escape(path.filename().string()));
    }
  }

  html += "<h2>Configuration</h2>\n";
  html += config_text.empty() ? "<p>No config.json.</p>\n"
                              : fmt::format("<pre class=\"config\">{}</pre>\n", plot::xml_escape(config_text));
  html += "</body>\n</html>\n";

  const auto out = (root / "report.html").string();
  write_file_atomically(out, html);
  return out;
}

void write_plot(const std::vector<std::string>& run_dirs, const std::vector<std::string>& keys,
                const std::string& out_svg) {
  VQVAE2_CHECK(!run_dirs.empty(), "give at least one run folder to plot");
  std::vector<MetricsHistory> histories;
  std::vector<std::string> names;
  for (const auto& dir : run_dirs) {
    const auto path = (fs::path(dir) / "metrics.jsonl").string();
    std::error_code error;
    VQVAE2_CHECK(fs::exists(path, error), "'{}' has no metrics.jsonl; give run folders (the --out of a training command)",
                 dir);
    histories.push_back(read_metrics(path));
    names.push_back(run_name(dir));
  }
  // Two runs called "vqvae" (runs/a/vqvae, runs/b/vqvae): name them by their paths instead.
  for (size_t i = 0; i < names.size(); ++i) {
    if (std::count(names.begin(), names.end(), names[i]) > 1) {
      for (size_t j = 0; j < names.size(); ++j) {
        if (names[j] == names[i] && j != i) names[j] = run_dirs[j];
      }
      names[i] = run_dirs[i];
    }
  }

  std::vector<std::string> wanted = keys;
  if (wanted.empty()) {
    for (const auto& h : histories) {
      const auto key = headline_key(h);
      if (!key.empty() && std::find(wanted.begin(), wanted.end(), key) == wanted.end()) wanted.push_back(key);
    }
  }
  std::set<std::string> available;
  for (const auto& h : histories) {
    for (const auto& [key, series] : h.series) available.insert(key);
  }
  VQVAE2_CHECK(!wanted.empty(), "the runs have no figures to plot yet (their metrics.jsonl hold no evaluation or loss)");

  // One panel per key; within it one colour per run, and one dash pattern per level of an array figure.
  static const char* dashes[] = {"", "6,3", "2,2", "8,3,2,3"};
  std::vector<std::vector<plot::Line>> panels;
  for (const auto& key : wanted) {
    auto& lines = panels.emplace_back();
    bool any = false;
    for (size_t r = 0; r < histories.size(); ++r) {
      std::vector<std::string> expanded;
      if (histories[r].has(key)) {
        expanded.push_back(key);
      } else {
        for (size_t level = 0; histories[r].has(fmt::format("{}[{}]", key, level)); ++level) {
          expanded.push_back(fmt::format("{}[{}]", key, level));
        }
      }
      if (expanded.empty()) {
        lines.push_back({names[r], names[r], key, nullptr, plot::colour(r), "", false});
        continue;
      }
      for (size_t e = 0; e < expanded.size(); ++e) {
        const auto& series = histories[r].series.at(expanded[e]);
        any = any || !series.values.empty();
        lines.push_back({expanded.size() > 1 ? names[r] + " " + expanded[e] : names[r], names[r], expanded[e], &series,
                         plot::colour(r), dashes[e % 4], key.rfind("val_", 0) == 0});
      }
    }
    VQVAE2_CHECK(any, "no run has a figure '{}'; the runs have: {} (an array figure such as 'usage' names every level)",
                 key, fmt::join(available, ", "));
  }

  // Panels stacked, their plot areas aligned: the widest legend sets every panel's.
  double legend = 0;
  for (const auto& lines : panels) legend = std::max(legend, plot::legend_width(lines));
  std::string body;
  double offset = 0;
  const double width = 760;
  for (size_t k = 0; k < wanted.size(); ++k) {
    const auto base = base_of(wanted[k]);
    const auto& list = families();
    const auto family = std::find_if(list.begin(), list.end(), [&](const Family& f) {
      return std::find(f.bases.begin(), f.bases.end(), base) != f.bases.end();
    });
    plot::ChartOptions options;
    options.title = wanted[k];
    options.y_label = family == list.end() ? wanted[k] : family->y_label;
    options.allow_log = family == list.end() || family->allow_log;
    options.include_zero = family != list.end() && family->include_zero;
    options.width = width;
    options.legend_width = legend;
    options.top = offset;
    body += plot::chart_svg(panels[k], options);
    offset += plot::chart_height(panels[k], options);
  }
  const auto svg = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" "
      "height=\"{}\" viewBox=\"0 0 {} {}\">\n{}</svg>\n",
      width, offset, width, offset, body);
  write_file_atomically(out_svg, svg);
}

}  // namespace vqvae2
