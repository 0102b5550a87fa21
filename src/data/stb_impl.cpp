// The one translation unit that compiles stb's image decoder, resizer and PNG writer. stb decodes
// only BMP, GIF and TGA here: JPEG goes to libjpeg-turbo (src/jpeg.cpp) and PNG to libpng
// (src/png.cpp), because fuzzing (fuzz/image_fuzz.cpp) found stb writing out of bounds on hostile
// JPEG Huffman tables and reading out of bounds on short 16-bit PNM data.
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_JPEG
#define STBI_NO_PNG
#define STBI_NO_PNM
#define STBI_NO_PSD
#define STBI_NO_HDR
#define STBI_NO_PIC
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>
#include <stb/stb_image_write.h>
