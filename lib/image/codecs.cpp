#include "image/codecs.h"

#include <dlfcn.h>

#include <mutex>
#include <type_traits>

#include <opencv2/imgcodecs.hpp>

#include "util/error.h"

namespace cbir {
namespace {

using DecodeFn = cv::Mat (*)(cv::InputArray, int);
using EncodeFn = bool (*)(const cv::String&, cv::InputArray, std::vector<uchar>&, const std::vector<int>&);
// The overloads these pointers take, checked against OpenCV's header (unevaluated: no link to them).
static_assert(std::is_same_v<decltype(static_cast<DecodeFn>(&cv::imdecode)), DecodeFn>);
static_assert(std::is_same_v<decltype(static_cast<EncodeFn>(&cv::imencode)), EncodeFn>);

struct Codecs {
    DecodeFn decode = nullptr;
    EncodeFn encode = nullptr;
};

const Codecs& codecs() {
    static std::once_flag once;
    static Codecs loaded;
    static std::string failure;
    std::call_once(once, [] {
        // Never closed: decoded images live on in the process.
        void* handle = ::dlopen(CBIR_OPENCV_IMGCODECS_SONAME, RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
            failure = ::dlerror();
            return;
        }
        // The mangled names of cv::imdecode(InputArray, int) and cv::imencode(String, InputArray,
        // vector<uchar>&, vector<int>), as the library exports them (OpenCV 4, the C++11 ABI).
        loaded.decode = reinterpret_cast<DecodeFn>(::dlsym(handle, "_ZN2cv8imdecodeERKNS_11_InputArrayEi"));
        loaded.encode = reinterpret_cast<EncodeFn>(::dlsym(
            handle, "_ZN2cv8imencodeERKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEERKNS_11_InputArrayERSt6"
                    "vectorIhSaIhEERKSB_IiSaIiEE"));
        if (!loaded.decode || !loaded.encode) failure = "imdecode or imencode not found in it";
    });
    if (!failure.empty())
        throw Error(std::string("cannot load OpenCV's image codecs (" CBIR_OPENCV_IMGCODECS_SONAME "): ") + failure);
    return loaded;
}

}  // namespace

cv::Mat decode_with_opencv(const cv::Mat& bytes, int flags) { return codecs().decode(bytes, flags); }

bool encode_with_opencv(const std::string& extension, const cv::Mat& image, std::vector<uchar>& out,
                        const std::vector<int>& params) {
    return codecs().encode(extension, image, out, params);
}

}  // namespace cbir
