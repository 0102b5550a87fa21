// Test helpers: SVG charts read back the way a person reads them (through the tick labels), so a
// test can check that a drawn point stands for the logged value; and base64/XML helpers.
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <pugixml.hpp>

#include <cmath>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace vqvae2::test::chart_reader {

// An axis as its tick labels say: the first and last tick's positions and the values printed there,
// interpolated linearly or (when the axis label says "log scale") in log10.
struct ReadAxis {
  double p0 = 0, v0 = 0, p1 = 0, v1 = 0;
  bool log = false;

  double pixel_of(double value) const {
    const auto t = log ? (std::log10(value) - std::log10(v0)) / (std::log10(v1) - std::log10(v0))
                       : (value - v0) / (v1 - v0);
    return p0 + t * (p1 - p0);
  }
};

// "translate(12.5,0)" -> 12.5 (x) or "translate(0,7.5)" -> 7.5 (y).
inline double translation(const std::string& transform, bool y) {
  const auto open = transform.find('('), comma = transform.find(',');
  return std::stod(y ? transform.substr(comma + 1) : transform.substr(open + 1, comma - open - 1));
}

inline ReadAxis read_axis(const pugi::xml_node& chart, const std::string& tick_class, bool log) {
  ReadAxis axis;
  axis.log = log;
  std::vector<std::pair<double, double>> ticks;  // (pixel, value)
  for (const auto& g : chart.children("g")) {
    if (std::string(g.attribute("class").value()) != tick_class) continue;
    ticks.emplace_back(translation(g.attribute("transform").value(), tick_class == "tick-y"),
                       std::stod(g.child("text").child_value()));
  }
  EXPECT_GE(ticks.size(), 2u) << "an axis needs two labelled ticks to be read";
  if (ticks.size() < 2) return axis;
  axis.p0 = ticks.front().first;
  axis.v0 = ticks.front().second;
  axis.p1 = ticks.back().first;
  axis.v1 = ticks.back().second;
  return axis;
}

inline std::vector<std::pair<double, double>> points_of(const pugi::xml_node& polyline) {
  std::vector<std::pair<double, double>> points;
  std::istringstream in(polyline.attribute("points").value());
  std::string pair;
  while (in >> pair) {
    const auto comma = pair.find(',');
    points.emplace_back(std::stod(pair.substr(0, comma)), std::stod(pair.substr(comma + 1)));
  }
  return points;
}

// The log as the test reads it (straight from the JSON, not through read_metrics): key -> (step, value).
using Expected = std::map<std::string, std::vector<std::pair<double, double>>>;

inline Expected expected_from(const std::string& jsonl) {
  Expected expected;
  std::istringstream in(jsonl);
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("step") || j.value("event", "") == "skipped") continue;
    for (const auto& [key, value] : j.items()) {
      if (key == "step" || key == "epoch") continue;
      if (value.is_number()) expected[key].emplace_back(j["step"].get<double>(), value.get<double>());
      if (value.is_array()) {
        for (size_t i = 0; i < value.size(); ++i) {
          expected[key + "[" + std::to_string(i) + "]"].emplace_back(j["step"].get<double>(), value[i].get<double>());
        }
      }
    }
  }
  return expected;
}

// Every polyline in every chart (an <svg> holding tick groups) under `root` lies, read back through
// its chart's axes, on the logged values: same count, within pixel rounding. Returns the keys of
// the polylines checked, in document order.
inline std::vector<std::string> check_charts_against_log(const pugi::xml_node& root, const Expected& expected) {
  std::vector<std::string> checked;
  for (const auto& found : root.select_nodes("//*[local-name()='svg'][*[local-name()='g'][@class='tick-y']]")) {
    const auto chart = found.node();
    const std::string y_label = chart.find_child_by_attribute("text", "class", "y-label").child_value();
    const auto x = read_axis(chart, "tick-x", false);
    const auto y = read_axis(chart, "tick-y", y_label.find("log scale") != std::string::npos);
    for (const auto& polyline : chart.children("polyline")) {
      const std::string key = polyline.attribute("data-key").value();
      SCOPED_TRACE("series " + key + " in chart '" + chart.find_child_by_attribute("text", "class", "title").child_value() + "'");
      const auto points = points_of(polyline);
      const auto& logged = expected.at(key);
      EXPECT_EQ(points.size(), logged.size());
      for (size_t i = 0; i < std::min(points.size(), logged.size()); ++i) {
        EXPECT_NEAR(points[i].first, x.pixel_of(logged[i].first), 0.2) << "step " << logged[i].first;
        EXPECT_NEAR(points[i].second, y.pixel_of(logged[i].second), 0.2) << "value " << logged[i].second;
      }
      checked.push_back(key);
    }
  }
  return checked;
}

inline std::string decode_base64(const std::string& text) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (const char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+') v = 62;
    else if (c == '/') v = 63;
    else break;  // '=' padding
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xff);
    }
  }
  return out;
}

inline pugi::xml_document parse_xml(const std::string& path) {
  pugi::xml_document doc;
  const auto result = doc.load_file(path.c_str());
  EXPECT_TRUE(result) << path << ": " << result.description() << " at byte " << result.offset;
  return doc;
}

}  // namespace vqvae2::test::chart_reader
