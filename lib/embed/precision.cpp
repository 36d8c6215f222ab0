#include "embed/precision.h"

#include <fstream>
#include <sstream>

namespace cbir {

const char* precision_name(Precision precision) {
    switch (precision) {
        case Precision::Float32: return "fp32";
        case Precision::BFloat16: return "bf16";
        case Precision::Int8: return "int8";
    }
    return "fp32";
}

std::optional<Precision> parse_precision_name(const std::string& name) {
    for (Precision p : {Precision::Float32, Precision::BFloat16, Precision::Int8})
        if (name == precision_name(p)) return p;
    return std::nullopt;
}

std::optional<PrecisionRequest> parse_precision_request(const std::string& text) {
    if (text.empty()) return PrecisionRequest::Default;
    if (text == "fp32") return PrecisionRequest::Fp32;
    if (text == "bf16") return PrecisionRequest::Bf16;
    if (text == "int8") return PrecisionRequest::Int8;
    if (text == "auto") return PrecisionRequest::Auto;
    return std::nullopt;
}

CpuPrecisionSupport cpu_support_from_flags(const std::string& cpuinfo) {
    CpuPrecisionSupport out;
    std::istringstream lines(cpuinfo);
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind("flags", 0) != 0) continue;
        std::istringstream words(line.substr(line.find(':') == std::string::npos ? line.size() : line.find(':') + 1));
        for (std::string flag; words >> flag;) {
            if (flag == "avx512_bf16" || flag == "amx_bf16") out.native_bf16 = true;
            if (flag == "avx512_vnni" || flag == "avx_vnni" || flag == "amx_int8") out.int8_dot = true;
        }
        break;  // every core of one machine lists the same flags
    }
    return out;
}

const CpuPrecisionSupport& this_cpu() {
    static const CpuPrecisionSupport support = [] {
        std::ifstream in("/proc/cpuinfo");
        std::stringstream text;
        text << in.rdbuf();
        return cpu_support_from_flags(text.str());
    }();
    return support;
}

std::string precision_engine(Precision precision, const CpuPrecisionSupport& cpu) {
    switch (precision) {
        case Precision::Float32: return "LibTorch fp32";
        case Precision::BFloat16:
            return cpu.native_bf16 ? "oneDNN bf16 (native on this CPU)"
                                   : "oneDNN bf16, emulated: this CPU has no avx512_bf16/amx_bf16, slower than fp32";
        case Precision::Int8:
            return cpu.int8_dot ? "oneDNN quantized engine (onednn; VNNI on this CPU)"
                                : "oneDNN quantized engine (onednn); this CPU has no VNNI, int8 may be no faster than fp32";
    }
    return "";
}

}  // namespace cbir
