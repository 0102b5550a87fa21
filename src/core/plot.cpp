#include "vqvae2/core/plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

namespace vqvae2 {

namespace plot {

double Scale::to_pixel(double value) const {
  const double t = log ? (std::log10(value) - std::log10(lo)) / (std::log10(hi) - std::log10(lo))
                       : (value - lo) / (hi - lo);
  return pixel_lo + t * (pixel_hi - pixel_lo);
}

double Scale::to_value(double pixel) const {
  const double t = (pixel - pixel_lo) / (pixel_hi - pixel_lo);
  return log ? std::pow(10.0, std::log10(lo) + t * (std::log10(hi) - std::log10(lo))) : lo + t * (hi - lo);
}

namespace {

// n * 10^e as the double nearest to that decimal (dividing by an exact power of ten rounds once,
// multiplying by 10^-|e| would round twice).
double decimal(double n, int e) { return e >= 0 ? n * std::pow(10.0, e) : n / std::pow(10.0, -e); }

// The round step (1, 2 or 5 times 10^e) that cuts `span` into about `target` pieces.
std::pair<double, int> round_step(double span, int target) {
  const double raw = span / std::max(target, 1);
  int e = static_cast<int>(std::floor(std::log10(raw)));
  const double normalised = raw / std::pow(10.0, e);
  double n = normalised < 1.5 ? 1 : normalised < 3.5 ? 2 : normalised < 7.5 ? 5 : 10;
  if (n == 10) {
    n = 1;
    ++e;
  }
  return {n, e};
}

}  // namespace

std::vector<double> ticks(const Scale& scale, int target) {
  std::vector<double> result;
  const double lo = std::min(scale.lo, scale.hi), hi = std::max(scale.lo, scale.hi);
  if (!(hi > lo)) return {lo};
  if (scale.log) {
    const int first = static_cast<int>(std::ceil(std::log10(lo) - 1e-9));
    const int last = static_cast<int>(std::floor(std::log10(hi) + 1e-9));
    const int stride = std::max(1, (last - first + target) / std::max(target, 1));
    for (int d = first; d <= last; d += stride) result.push_back(decimal(1, d));
    if (last - first <= 1) {  // a single decade: 2 and 5 between the powers of ten
      std::vector<double> finer;
      for (int d = first - 1; d <= last; ++d) {
        for (const double m : {1.0, 2.0, 5.0}) {
          const double v = decimal(m, d);
          if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) finer.push_back(v);
        }
      }
      result = finer;
    }
    return result;
  }
  const auto [n, e] = round_step(hi - lo, target);
  const double step = decimal(n, e);
  const auto first = static_cast<int64_t>(std::ceil(lo / step - 1e-9));
  const auto last = static_cast<int64_t>(std::floor(hi / step + 1e-9));
  for (int64_t k = first; k <= last; ++k) {
    const double v = decimal(static_cast<double>(k) * n, e);
    result.push_back(v == 0 ? 0.0 : v);  // no "-0"
  }
  return result;
}

std::string tick_label(double value) { return fmt::format("{:.10g}", value); }

Scale fit_scale(const std::vector<double>& values, double pixel_lo, double pixel_hi, bool allow_log) {
  Scale scale;
  scale.pixel_lo = pixel_lo;
  scale.pixel_hi = pixel_hi;
  double lo = INFINITY, hi = -INFINITY;
  for (const double v : values) {
    if (!std::isfinite(v)) continue;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  if (!std::isfinite(lo)) {
    scale.lo = 0;
    scale.hi = 1;
    return scale;
  }
  if (allow_log && lo > 0 && hi >= 10 * lo) {
    scale.log = true;
    // The nearest 1, 2 or 5 times a power of ten outside the values: whole decades would leave
    // most of the chart empty when the values end just past one.
    const int low_decade = static_cast<int>(std::floor(std::log10(lo) + 1e-12));
    scale.lo = decimal(1, low_decade);
    for (const double m : {2.0, 5.0}) {
      if (decimal(m, low_decade) <= lo) scale.lo = decimal(m, low_decade);
    }
    const int high_decade = static_cast<int>(std::floor(std::log10(hi) - 1e-12));
    scale.hi = decimal(10, high_decade);
    for (const double m : {5.0, 2.0, 1.0}) {
      if (decimal(m, high_decade) >= hi) scale.hi = decimal(m, high_decade);
    }
    return scale;
  }
  if (hi == lo) {
    const double half = lo == 0 ? 1 : std::abs(lo) * 0.5;
    lo -= half;
    hi += half;
  }
  // Widen to the round step's multiples; widening can call for a longer step, so repeat until the
  // ends stay put (then ticks() starts and ends on them).
  for (int pass = 0; pass < 4; ++pass) {
    const auto [n, e] = round_step(hi - lo, 5);
    const double step = decimal(n, e);
    const double wider_lo = decimal(std::floor(lo / step + 1e-9) * n, e);
    const double wider_hi = decimal(std::ceil(hi / step - 1e-9) * n, e);
    if (wider_lo == lo && wider_hi == hi) break;
    lo = wider_lo;
    hi = wider_hi;
  }
  scale.lo = lo;
  scale.hi = hi;
  return scale;
}

std::vector<size_t> decimate(const std::vector<double>& values, size_t buckets) {
  const size_t n = values.size();
  std::vector<size_t> kept;
  if (buckets == 0 || n <= 2 * buckets) {
    for (size_t i = 0; i < n; ++i) kept.push_back(i);
    return kept;
  }
  for (size_t b = 0; b < buckets; ++b) {
    const size_t begin = b * n / buckets, end = (b + 1) * n / buckets;
    size_t low = begin, high = begin;
    for (size_t i = begin; i < end; ++i) {
      if (values[i] < values[low]) low = i;
      if (values[i] > values[high]) high = i;
    }
    kept.push_back(std::min(low, high));
    if (low != high) kept.push_back(std::max(low, high));
  }
  return kept;
}

std::string polyline_points(const std::vector<double>& steps, const std::vector<double>& values, const Scale& x,
                            const Scale& y) {
  std::string points;
  for (size_t i = 0; i < std::min(steps.size(), values.size()); ++i) {
    if (y.log && !(values[i] > 0)) continue;
    if (!points.empty()) points += ' ';
    points += fmt::format("{:.1f},{:.1f}", x.to_pixel(steps[i]), y.to_pixel(values[i]));
  }
  return points;
}

std::string xml_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string colour(size_t i) {
  // Tableau 10: distinct for the common forms of colour blindness, readable on white.
  static const char* palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                  "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
  return palette[i % 10];
}

namespace {

constexpr double kCharWidth = 7.0;  // an estimate of a 12px sans-serif character, for layout

}  // namespace

double legend_width(const std::vector<Line>& lines) {
  size_t longest = 0;
  for (const auto& line : lines) {
    const bool empty = !line.series || line.series->steps.empty();
    longest = std::max(longest, line.name.size() + (empty ? 10 : 0));  // " (no data)"
  }
  return std::clamp(40 + kCharWidth * static_cast<double>(longest), 80.0, 300.0);
}

double chart_height(const std::vector<Line>& lines, const ChartOptions& options) {
  return std::max(options.height, 20.0 * static_cast<double>(lines.size()) + 40);
}

std::string chart_svg(const std::vector<Line>& lines, const ChartOptions& options) {
  const auto attributes = options.top >= 0 ? fmt::format("y=\"{}\"", options.top)
                                           : std::string("xmlns=\"http://www.w3.org/2000/svg\"");
  const double legend = options.legend_width > 0 ? options.legend_width : legend_width(lines);
  const double left = 70, top = 30, right = options.width - legend - 16;
  const double height = chart_height(lines, options);
  const double bottom = height - 42;

  std::vector<double> xs, ys;
  for (const auto& line : lines) {
    if (!line.series) continue;
    xs.insert(xs.end(), line.series->steps.begin(), line.series->steps.end());
    ys.insert(ys.end(), line.series->values.begin(), line.series->values.end());
  }
  if (options.include_zero) ys.push_back(0);
  const auto x = fit_scale(xs, left, right, /*allow_log=*/false);
  const auto y = fit_scale(ys, bottom, top, options.allow_log);

  std::string svg = fmt::format(
      "<svg {} width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" font-family=\"sans-serif\" font-size=\"12\">\n",
      attributes, options.width, height, options.width, height);
  svg += fmt::format("<rect width=\"{}\" height=\"{}\" fill=\"white\"/>\n", options.width, height);
  svg += fmt::format("<text class=\"title\" x=\"{}\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{}</text>\n", left,
                     xml_escape(options.title));

  // Grid lines, ticks and their labels; the tick's position is the translation of its group.
  for (const double v : ticks(x)) {
    svg += fmt::format(
        "<g class=\"tick-x\" transform=\"translate({:.1f},0)\"><line y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e4e4e4\"/>"
        "<line y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#444\"/><text y=\"{:.1f}\" text-anchor=\"middle\">{}</text></g>\n",
        x.to_pixel(v), top, bottom, bottom, bottom + 5, bottom + 18, tick_label(v));
  }
  for (const double v : ticks(y)) {
    svg += fmt::format(
        "<g class=\"tick-y\" transform=\"translate(0,{:.1f})\"><line x1=\"{:.1f}\" x2=\"{:.1f}\" stroke=\"#e4e4e4\"/>"
        "<line x1=\"{:.1f}\" x2=\"{:.1f}\" stroke=\"#444\"/><text x=\"{:.1f}\" dy=\"4\" text-anchor=\"end\">{}</text></g>\n",
        y.to_pixel(v), left, right, left - 5, left, left - 8, tick_label(v));
  }
  svg += fmt::format("<rect class=\"frame\" x=\"{}\" y=\"{}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"none\" stroke=\"#444\"/>\n",
                     left, top, right - left, bottom - top);
  svg += fmt::format("<text class=\"x-label\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n",
                     (left + right) / 2, height - 6, xml_escape(options.x_label));
  svg += fmt::format(
      "<text class=\"y-label\" transform=\"translate(16,{:.1f}) rotate(-90)\" text-anchor=\"middle\">{}{}</text>\n",
      (top + bottom) / 2, xml_escape(options.y_label), y.log ? " (log scale)" : "");

  for (const auto& line : lines) {
    if (!line.series || line.series->steps.empty()) continue;
    const auto kept = decimate(line.series->values, options.max_points / 2);
    std::vector<double> steps, values;
    for (const auto i : kept) {
      steps.push_back(line.series->steps[i]);
      values.push_back(line.series->values[i]);
    }
    const auto dash = line.dash.empty() ? std::string() : fmt::format(" stroke-dasharray=\"{}\"", line.dash);
    svg += fmt::format(
        "<polyline class=\"series\" data-run=\"{}\" data-key=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"{} "
        "points=\"{}\"/>\n",
        xml_escape(line.run), xml_escape(line.key), line.colour, dash, polyline_points(steps, values, x, y));
    if (line.markers) {
      for (size_t i = 0; i < steps.size(); ++i) {
        if (y.log && !(values[i] > 0)) continue;
        svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"{}\"/>\n", x.to_pixel(steps[i]),
                           y.to_pixel(values[i]), line.colour);
      }
    }
  }

  svg += "<g class=\"legend\">\n";
  double row = top + 6;
  for (const auto& line : lines) {
    const bool empty = !line.series || line.series->steps.empty();
    const auto dash = line.dash.empty() ? std::string() : fmt::format(" stroke-dasharray=\"{}\"", line.dash);
    svg += fmt::format(
        "<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" stroke-width=\"2\"{}/>"
        "<text x=\"{:.1f}\" y=\"{:.1f}\">{}{}</text>\n",
        right + 12, right + 34, row, row, line.colour, dash, right + 40, row + 4, xml_escape(line.name),
        empty ? " (no data)" : "");
    row += 20;
  }
  svg += "</g>\n</svg>\n";
  return svg;
}

}  // namespace plot

}  // namespace vqvae2
