#include "vqvae2/data/image.h"

#include "test_util.h"
#include "vqvae2/core/error.h"
#include "vqvae2/core/files.h"

#include <gtest/gtest.h>
#include <stb/stb_image_write.h>

#include <cstdio>  // jpeglib.h needs FILE
#include <cstdlib>
#include <jpeglib.h>

namespace vqvae2 {
namespace {

std::vector<uint8_t> encode_png(int w, int h, int c, const std::vector<uint8_t>& pixels) {
  std::vector<uint8_t> out;
  stbi_write_png_to_func(
      [](void* context, void* data, int size) {
        auto* v = static_cast<std::vector<uint8_t>*>(context);
        v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
      },
      &out, w, h, c, pixels.data(), w * c);
  return out;
}

TEST(Image, CropsTheCentreSquareOfAWideImage) {
  // 6×2 RGB: columns 0-1 red, 2-3 green, 4-5 blue. The centre 2×2 square is green.
  std::vector<uint8_t> pixels;
  for (int y = 0; y < 2; ++y) {
    for (int x = 0; x < 6; ++x) {
      pixels.push_back(x < 2 ? 255 : 0);
      pixels.push_back(x >= 2 && x < 4 ? 255 : 0);
      pixels.push_back(x >= 4 ? 255 : 0);
    }
  }
  const auto image = decode_image(encode_png(6, 2, 3, pixels), "wide.png", 2, 3);
  ASSERT_EQ(image.sizes(), (std::vector<int64_t>{3, 2, 2}));
  EXPECT_EQ(image[0].max().item<int>(), 0);
  EXPECT_EQ(image[1].min().item<int>(), 255);
  EXPECT_EQ(image[2].max().item<int>(), 0);
}

TEST(Image, CompositesTransparencyOntoWhiteAndConvertsToGrey) {
  // 2×2 RGBA: fully transparent black (-> white), opaque black, half-transparent red, opaque white.
  const std::vector<uint8_t> rgba = {0, 0, 0, 0, 0, 0, 0, 255, 255, 0, 0, 128, 255, 255, 255, 255};
  const auto rgb = decode_image(encode_png(2, 2, 4, rgba), "alpha.png", 2, 3);
  EXPECT_EQ(rgb[0][0][0].item<int>(), 255);  // transparent -> white
  EXPECT_EQ(rgb[1][0][1].item<int>(), 0);    // opaque black stays black
  EXPECT_EQ(rgb[0][1][0].item<int>(), 255);  // half red over white: red channel full
  EXPECT_NEAR(rgb[1][1][0].item<int>(), 127, 1);  // green at half
  const auto grey = decode_image(encode_png(2, 2, 4, rgba), "alpha.png", 2, 1);
  ASSERT_EQ(grey.sizes(), (std::vector<int64_t>{1, 2, 2}));
  EXPECT_EQ(grey[0][0][0].item<int>(), 255);
  EXPECT_EQ(grey[0][0][1].item<int>(), 0);
}

TEST(Image, ResizesToTheAskedSide) {
  std::vector<uint8_t> pixels(40 * 40, 200);
  const auto image = decode_image(encode_png(40, 40, 1, pixels), "grey.png", 8, 3);
  ASSERT_EQ(image.sizes(), (std::vector<int64_t>{3, 8, 8}));
  EXPECT_EQ(image.min().item<int>(), 200);
  EXPECT_EQ(image.max().item<int>(), 200);
}

TEST(Image, RefusesBrokenFilesWithTheirName) {
  EXPECT_THROW(decode_image({}, "empty.png", 8, 3), Error);
  const std::vector<uint8_t> text = {'h', 'e', 'l', 'l', 'o'};
  try {
    decode_image(text, "notes.png", 8, 3);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("notes.png"), std::string::npos);
  }
  auto png = encode_png(16, 16, 3, std::vector<uint8_t>(16 * 16 * 3, 9));
  png.resize(png.size() / 2);  // truncated
  EXPECT_THROW(decode_image(png, "half.png", 8, 3), Error);
}

TEST(Image, RefusesHugeDimensionsBeforeDecoding) {
  // A valid PNG header claiming 100000 × 100000 pixels, with no data behind it.
  auto png = encode_png(1, 1, 1, {0});
  const uint32_t side = 100000;
  for (int i = 0; i < 4; ++i) {
    png[16 + i] = static_cast<uint8_t>(side >> (24 - 8 * i));
    png[20 + i] = static_cast<uint8_t>(side >> (24 - 8 * i));
  }
  try {
    decode_image(png, "huge.png", 8, 3);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("huge.png"), std::string::npos) << e.what();
  }
}

// Test JPEGs come from libjpeg's own encoder: stb's JPEG writer shifts negative values (undefined
// behaviour that UBSan stops on in scripts/sanitize.sh).
std::vector<uint8_t> encode_jpeg(int w, int h, const std::vector<uint8_t>& rgb) {
  jpeg_compress_struct cinfo{};
  jpeg_error_mgr jerr{};
  cinfo.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = static_cast<JDIMENSION>(w);
  cinfo.image_height = static_cast<JDIMENSION>(h);
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, 95, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    auto* row = const_cast<JSAMPLE*>(rgb.data() + static_cast<size_t>(cinfo.next_scanline) * w * 3);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  std::vector<uint8_t> out(buffer, buffer + size);
  jpeg_destroy_compress(&cinfo);
  free(buffer);
  return out;
}

TEST(Image, DecodesJpegWithLibjpeg) {
  std::vector<uint8_t> rgb;
  for (int i = 0; i < 16 * 16; ++i) rgb.insert(rgb.end(), {200, 40, 90});
  const auto image = decode_image(encode_jpeg(16, 16, rgb), "flat.jpg", 8, 3);
  ASSERT_EQ(image.sizes(), (std::vector<int64_t>{3, 8, 8}));
  EXPECT_NEAR(image[0].to(torch::kFloat).mean().item<double>(), 200, 4);
  EXPECT_NEAR(image[1].to(torch::kFloat).mean().item<double>(), 40, 4);
  EXPECT_NEAR(image[2].to(torch::kFloat).mean().item<double>(), 90, 4);
  test::TempDir dir;
  const auto bytes = encode_jpeg(16, 12, std::vector<uint8_t>(16 * 12 * 3, 7));
  test::write_bytes(dir.file("x.jpg"), std::string(bytes.begin(), bytes.end()));
  const auto info = probe_image(dir.file("x.jpg"));
  EXPECT_EQ(info.width, 16);
  EXPECT_EQ(info.height, 12);
}

TEST(Image, RefusesTruncatedAndOversizedJpegs) {
  std::vector<uint8_t> rgb(32 * 32 * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<uint8_t>(i * 7);
  const auto jpeg = encode_jpeg(32, 32, rgb);
  const std::vector<uint8_t> cut(jpeg.begin(), jpeg.begin() + static_cast<long>(jpeg.size() * 2 / 3));
  try {
    decode_image(cut, "cut.jpg", 8, 3);
    FAIL() << "a truncated JPEG was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated JPEG"), std::string::npos) << e.what();
  }
  // Claim 65280 × 65280 pixels in the frame header (SOF0: FF C0, length, precision, height, width).
  auto huge = jpeg;
  for (size_t i = 0; i + 8 < huge.size(); ++i) {
    if (huge[i] == 0xFF && huge[i + 1] == 0xC0) {
      huge[i + 5] = huge[i + 7] = 0xFF;
      huge[i + 6] = huge[i + 8] = 0x00;
      break;
    }
  }
  try {
    decode_image(huge, "huge.jpg", 8, 3);
    FAIL() << "an oversized JPEG was decoded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("more than the"), std::string::npos) << e.what();
  }
}

// Inputs the fuzzers found crashing earlier versions; each must now be a clean error.
TEST(Image, FuzzerCrashInputsAreCleanErrors) {
  // stb wrote past a Huffman table on this JPEG, and read past the pixels of this 16-bit PGM.
  for (const char* file : {"stb-jpeg-huffman-overflow.jpg", "stb-pnm-16bit-overread.pgm"}) {
    const auto bytes = read_file(std::string(VQVAE2_TEST_DATA) + "/" + file);
    EXPECT_THROW(decode_image(bytes, file, 16, 3), Error) << file;
  }
  // pixels_fuzz: a BMP 16777216 pixels wide and 0 high, which stb "decodes" to no pixels.
  const auto bmp = read_file(std::string(VQVAE2_TEST_DATA) + "/bmp-zero-height.bmp");
  test::expect_error([&] { decode_image(bmp, "bmp-zero-height.bmp", 16, 3); }, "has an empty image (16777216x0)");
}

TEST(Image, GridPlacesImagesInRowsWithWhiteGaps) {
  const auto images = torch::zeros({5, 1, 2, 2}, torch::kUInt8);
  const auto grid = make_grid(images, 3, 1);
  // 3 columns, 2 rows: width 3·(2+1)+1 = 10, height 2·(2+1)+1 = 7.
  EXPECT_EQ(grid.sizes(), (std::vector<int64_t>{1, 7, 10}));
  EXPECT_EQ(grid[0][0][0].item<int>(), 255);
  EXPECT_EQ(grid[0][1][1].item<int>(), 0);
  EXPECT_EQ(grid[0][4][7].item<int>(), 255);  // the empty sixth slot stays white
}

TEST(Image, PngRoundTrip) {
  test::TempDir dir;
  const auto image = torch::randint(0, 256, {3, 5, 7}, torch::kLong).to(torch::kUInt8);
  save_png(dir.file("x.png"), image);
  EXPECT_TRUE(torch::equal(load_image(dir.file("x.png"), 5, 3).slice(2, 0, 5), image.slice(2, 1, 6)));
}

TEST(Image, ConvertsBetweenPixelsAndModelRange) {
  const auto pixels = torch::tensor({0, 128, 255}, torch::kUInt8);
  const auto x = to_model_range(pixels);
  EXPECT_NEAR(x[0].item<double>(), -1.0, 1e-6);
  EXPECT_NEAR(x[2].item<double>(), 1.0, 1e-6);
  EXPECT_TRUE(torch::equal(to_pixels(x), pixels));
  EXPECT_EQ(to_pixels(torch::tensor({-3.0f, 3.0f}))[1].item<int>(), 255);
}

TEST(Image, JitterWithoutBoundsIsTheIdentity) {
  const auto x = torch::rand({3, 2, 16, 16});
  EXPECT_TRUE(torch::allclose(jitter_images(x, {0, 0, 0}, 7), x, 1e-5, 1e-5));
}

TEST(Image, JitterMovesEachImageWithinItsBoundsAndKeepsABackgroundItsColour) {
  // A background keeps its colour however far the image turns or moves: edges extend outwards (zero
  // padding would bring black corners into a white icon).
  const auto white = torch::full({4, 3, 16, 16}, 0.7);
  EXPECT_TRUE(torch::allclose(jitter_images(white, {30, 0.2, 3}, 1), white, 1e-5, 1e-5));

  // One bright 2×2 square in the middle, shifted only: its mass stays (bilinear weights sum to 1 away
  // from the edges) and its centre moves by at most max_shift on each axis, by a different amount in
  // each image, the same for the same seed.
  auto square = torch::zeros({8, 1, 32, 32});
  square.slice(2, 15, 17).slice(3, 15, 17).fill_(1);
  const ImageJitter shift_only{0, 0, 2.0};
  const auto moved = jitter_images(square, shift_only, 3);
  EXPECT_TRUE(torch::equal(moved, jitter_images(square, shift_only, 3)));
  EXPECT_FALSE(torch::equal(moved, jitter_images(square, shift_only, 4)));
  const auto coordinate = torch::arange(32, torch::kFloat);
  const auto mass = moved.sum({1, 2, 3});
  EXPECT_TRUE(torch::allclose(mass, torch::full({8}, 4.0), 1e-4, 1e-4)) << mass;
  const auto centre_y = (moved.sum({1, 3}) * coordinate).sum(1) / mass - 15.5;
  const auto centre_x = (moved.sum({1, 2}) * coordinate).sum(1) / mass - 15.5;
  EXPECT_LE(centre_y.abs().max().item<double>(), 2.0 + 1e-4);
  EXPECT_LE(centre_x.abs().max().item<double>(), 2.0 + 1e-4);
  EXPECT_GT(centre_x.abs().max().item<double>(), 0.5) << "nothing moved";
  EXPECT_GT((centre_x - centre_x[0]).abs().max().item<double>(), 0.1) << "every image moved alike";

  // Rotation and zoom keep the square's centre (it is the image's centre) and spread or shrink it.
  const auto turned = jitter_images(square, {45, 0.3, 0}, 5);
  const auto turned_mass = turned.sum({1, 2, 3});
  const auto turned_x = (turned.sum({1, 2}) * coordinate).sum(1) / turned_mass - 15.5;
  EXPECT_LE(turned_x.abs().max().item<double>(), 1e-3);
  EXPECT_FALSE(torch::allclose(turned, square, 1e-3, 1e-3));

  test::expect_error([&] { jitter_images(square, {-1, 0, 0}, 0); }, "rotation");
  test::expect_error([&] { jitter_images(square, {0, 1, 0}, 0); }, "scale");
  test::expect_error([&] { jitter_images(square[0], {0, 0, 1}, 0); }, "[B, C, H, W]");
}

}  // namespace
}  // namespace vqvae2
