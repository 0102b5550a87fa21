// SVG charts of series over training steps: scales, round ticks, decimated polylines, legends. Small
// pure functions, so tests can check a drawn point against the value it stands for.
//
// Glossary: a *series* is one figure over training steps; a *chart* is one panel with axes,
// ticks, a legend and one polyline per series; *pixel* coordinates are SVG user units, y growing
// downwards.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace vqvae2 {

struct Series {
  std::vector<double> steps;
  std::vector<double> values;  // finite values only: a null (a NaN when logged) is left out
};

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

}  // namespace vqvae2
