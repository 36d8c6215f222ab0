// The precision rule (embed/precision.h, pipeline/precision_choice.h) for CPUs other than this one:
// which instruction sets count as native bf16 / int8, and what --precision auto picks on each.
#include <doctest/doctest.h>

#include "embed/precision.h"
#include "pipeline/precision_choice.h"

using namespace cbir;

TEST_CASE("precision: native bf16 and VNNI are read from the cpuinfo flags line") {
    const std::string zen4 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16\n";
    const std::string sapphire = "flags\t\t: avx2 avx512f amx_bf16 amx_tile amx_int8\n";
    const std::string skylake = "flags\t\t: avx2 avx512f avx512bw avx512vl\nbugs\t\t: avx512_bf16_is_a_bug_name\n";
    const std::string alder = "flags\t\t: avx2 avx_vnni\n";
    CHECK(cpu_support_from_flags(zen4).native_bf16);
    CHECK(cpu_support_from_flags(zen4).int8_dot);
    CHECK(cpu_support_from_flags(sapphire).native_bf16);
    CHECK(cpu_support_from_flags(sapphire).int8_dot);
    CHECK_FALSE(cpu_support_from_flags(skylake).native_bf16);  // avx512 alone: bf16 is emulated
    CHECK_FALSE(cpu_support_from_flags(skylake).int8_dot);
    CHECK_FALSE(cpu_support_from_flags(alder).native_bf16);
    CHECK(cpu_support_from_flags(alder).int8_dot);
    CHECK_FALSE(cpu_support_from_flags("").native_bf16);
}

TEST_CASE("precision: auto picks bf16 only on a CPU with native bf16; the default is fp32") {
    CpuPrecisionSupport native, emulated;
    native.native_bf16 = true;
    CHECK(float_precision_for(PrecisionRequest::Auto, nullptr, native) == Precision::BFloat16);
    CHECK(float_precision_for(PrecisionRequest::Auto, nullptr, emulated) == Precision::Float32);
    CHECK(float_precision_for(PrecisionRequest::Default, nullptr, native) == Precision::Float32);
    CHECK(float_precision_for(PrecisionRequest::Bf16, nullptr, emulated) == Precision::BFloat16);  // asked: said, run
    CHECK(precision_engine(Precision::BFloat16, emulated).find("slower than fp32") != std::string::npos);
}

TEST_CASE("precision: names and requests round-trip") {
    for (Precision p : {Precision::Float32, Precision::BFloat16, Precision::Int8})
        CHECK(parse_precision_name(precision_name(p)) == p);
    CHECK_FALSE(parse_precision_name("fp16"));
    CHECK(parse_precision_request("") == PrecisionRequest::Default);
    CHECK(parse_precision_request("auto") == PrecisionRequest::Auto);
    CHECK_FALSE(parse_precision_request("int4"));
}
