#pragma once
// How a model's arithmetic runs, and the rule that picks it. Part of a store's recipe beside the
// model's sha256: int8 is a property of the model file (a quantized TorchScript), bf16 a property of
// how a float model is run, fp32 the float model as exported (what the PyTorch pipeline computes).
#include <optional>
#include <string>

namespace cbir {

enum class Precision { Float32, BFloat16, Int8 };

// What the user asked for with --precision. Default: an existing store's own precision, fp32 for a
// new store. Auto: an int8 model runs in int8; a float model in bf16 where the CPU has native bf16
// (AVX512-BF16 or AMX-BF16), else fp32; an existing store always in its own precision.
enum class PrecisionRequest { Default, Fp32, Bf16, Int8, Auto };

const char* precision_name(Precision precision);  // "fp32", "bf16", "int8"
std::optional<Precision> parse_precision_name(const std::string& name);
// "" (Default), "fp32", "bf16", "int8", "auto".
std::optional<PrecisionRequest> parse_precision_request(const std::string& text);

// What this CPU runs natively, from the kernel's list of usable instruction sets.
struct CpuPrecisionSupport {
    bool native_bf16 = false;  // avx512_bf16 or amx_bf16: oneDNN's bf16 kernels; without them bf16 is emulated
    bool int8_dot = false;     // avx512_vnni, avx_vnni or amx_int8: oneDNN's fast int8 kernels
};
// The flags line(s) of /proc/cpuinfo.
CpuPrecisionSupport cpu_support_from_flags(const std::string& cpuinfo);
// This machine's (read once).
const CpuPrecisionSupport& this_cpu();

// The engine a precision runs on here, in words (`cbir info`, benchmarks).
std::string precision_engine(Precision precision, const CpuPrecisionSupport& cpu);

}  // namespace cbir
