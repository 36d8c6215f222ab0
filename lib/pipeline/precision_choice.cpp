#include "pipeline/precision_choice.h"

#include <fmt/format.h>

#include "util/error.h"
#include "util/log.h"

namespace cbir {
namespace {

std::optional<Precision> requested_precision(PrecisionRequest request) {
    switch (request) {
        case PrecisionRequest::Fp32: return Precision::Float32;
        case PrecisionRequest::Bf16: return Precision::BFloat16;
        case PrecisionRequest::Int8: return Precision::Int8;
        case PrecisionRequest::Default:
        case PrecisionRequest::Auto: return std::nullopt;
    }
    return std::nullopt;
}

std::string mismatch(const Store& store, Precision recorded, Precision asked) {
    return fmt::format("{}: precision mismatch: the store's vectors were made in {}, this run asks for {}; omit "
                       "--precision (a store always runs in its own precision) or use a new --store",
                       store.dir().string(), precision_name(recorded), precision_name(asked));
}

void warn_if_slow_here(Precision precision, const CpuPrecisionSupport& cpu) {
    if (precision == Precision::BFloat16 && !cpu.native_bf16)
        log_warning("this CPU has no native bf16 (no avx512_bf16 or amx_bf16): bf16 is emulated and runs slower "
                    "than fp32 here; choose fp32 (or auto) for new stores");
    if (precision == Precision::Int8 && !cpu.int8_dot)
        log_warning("this CPU has no VNNI (avx512_vnni, avx_vnni or amx_int8): the int8 model may run no faster "
                    "than fp32 here; compare with 'cbir bench inference'");
}

}  // namespace

Precision float_precision_for(PrecisionRequest request, const Store* store, const CpuPrecisionSupport& cpu) {
    const auto asked = requested_precision(request);
    if (store) {
        const auto& recorded = store->settings().precision;
        // An unrecorded store is fp32 unless its model is quantized; that is known after loading.
        if (asked && recorded && *asked != *recorded) throw Error(mismatch(*store, *recorded, *asked));
        if (asked == Precision::BFloat16 && !recorded) throw Error(mismatch(*store, Precision::Float32, *asked));
        return recorded == Precision::BFloat16 ? Precision::BFloat16 : Precision::Float32;
    }
    if (asked) return *asked == Precision::BFloat16 ? Precision::BFloat16 : Precision::Float32;
    if (request == PrecisionRequest::Auto && cpu.native_bf16) return Precision::BFloat16;
    return Precision::Float32;
}

std::optional<Precision> expected_precision(PrecisionRequest request, const Store& store) {
    if (auto asked = requested_precision(request)) return asked;
    return store.settings().precision;
}

std::unique_ptr<Embedder> load_embedder(const std::filesystem::path& model, EmbedderOptions options,
                                        PrecisionRequest request, const Store* store) {
    const CpuPrecisionSupport& cpu = this_cpu();
    options.precision = float_precision_for(request, store, cpu);
    auto embedder = Embedder::load(model, options);
    const Precision loaded = embedder->precision();
    const auto asked = requested_precision(request);
    if (asked && *asked != loaded) {
        if (loaded == Precision::Int8)
            throw Error(fmt::format("{}: an int8 (quantized) model runs only in int8; --precision {} applies to float "
                                    "models (omit it, or give int8 or auto)",
                                    model.string(), precision_name(*asked)));
        throw Error(fmt::format("{}: --precision int8 needs a quantized model (make one with "
                                "scripts/export_resnet18.py --int8); this one is a float model",
                                model.string()));
    }
    if (store && store->settings().precision && *store->settings().precision != loaded)
        throw Error(mismatch(*store, *store->settings().precision, loaded));
    warn_if_slow_here(loaded, cpu);
    log_debug(fmt::format("{} runs in {} ({})", model.filename().string(), precision_name(loaded),
                          precision_engine(loaded, cpu)));
    return embedder;
}

}  // namespace cbir
