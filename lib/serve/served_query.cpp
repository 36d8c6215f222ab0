#include "serve/served_query.h"

#include "pipeline/precision_choice.h"

#include <chrono>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "image/image_file.h"
#include "image/preprocess.h"
#include "pipeline/model_resolution.h"
#include "serve/local_socket.h"
#include "serve/search_service.h"
#include "store/store_info.h"
#include "store/derived_index.h"
#include "util/byte_text.h"
#include "util/error.h"
#include "util/log.h"
#include "util/words.h"

namespace cbir {
namespace {

std::string url_encoded(const std::string& text) {
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
            out += static_cast<char>(c);
        else
            out += fmt::format("%{:02X}", c);
    }
    return out;
}

// The search parameters and what the answer must be to equal run_query's.
std::string search_target(const QueryOptions& options, const CatalogueState& state, const ModelFile* model,
                          std::optional<Precision> precision, const PreprocessSpec& preprocessing) {
    std::string target = fmt::format("/search?k={}&ef={}&nprobe={}&one_shot=1&store_id={}&generation={}&state_token={}",
                                     options.top_k, options.ef, options.nprobe, url_encoded(state.store_id),
                                     state.generation, url_encoded(state.token));
    // The shortest text that reads back as the same float.
    if (options.max_distance) target += "&max_distance=" + url_encoded(fmt::format("{}", *options.max_distance));
    if (model) {
        target += "&model_sha256=" + url_encoded(model->sha256);
        // A store that records no precision (made before precisions were recorded) is run by the
        // server in what a local run would choose, by the same rule with the same model: nothing to ask.
        if (precision) target += "&precision=" + url_encoded(precision_name(*precision));
        target += "&preprocessing=" + url_encoded(preprocessing.name());
    }
    return target;
}

struct ServedHits {
    std::string index_kind;
    std::vector<QueryHit> hits;
};

// Throws Error (or a json exception) when the answer is not a search answer.
ServedHits parse_answer(const std::string& body) {
    const nlohmann::json answer = nlohmann::json::parse(body);
    ServedHits out;
    out.index_kind = answer.at("index").get<std::string>();
    for (const auto& hit : answer.at("results")) {
        QueryHit h;
        h.rank = hit.at("rank").get<int>();
        h.id = hit.at("id").get<int64_t>();
        // The server's float, written as the shortest text that reads back as the same value.
        h.distance = static_cast<float>(hit.at("distance").get<double>());
        if (hit.contains("path_bytes")) {
            auto bytes = base64_decode(hit.at("path_bytes").get<std::string>());
            if (!bytes) throw Error("path_bytes is not base64");
            h.path = std::move(*bytes);
        } else {
            h.path = hit.at("path").get<std::string>();
        }
        out.hits.push_back(std::move(h));
    }
    return out;
}

std::string error_of(const LocalReply& reply) {
    try {
        return nlohmann::json::parse(reply.body).at("error").get<std::string>();
    } catch (const std::exception&) {
        return fmt::format("HTTP {}", reply.status);
    }
}

}  // namespace

std::optional<QueryReport> query_through_server(const std::vector<std::filesystem::path>& images,
                                                const QueryOptions& options) {
    const auto started = std::chrono::steady_clock::now();
    auto local = [](const std::string& why) -> std::optional<QueryReport> {
        log_debug("searching here, not through a server: " + why);
        return std::nullopt;
    };
    if (options.exact) return local("--exact");
    if (images.size() > kOneShotQueries) return local(fmt::format("more than {} query images", kOneShotQueries));
    std::string why;
    std::optional<LocalServerClient> client = LocalServerClient::open(options.store_dir, why);
    if (!client) return local(why);
    try {
        auto store = Store::open(options.store_dir, CatalogueAccess::ReadOnly);
        const CatalogueState state = catalogue_state(*store, store->catalogue().generation());
        if (state.store_id.empty()) return local("the store has no identity yet (made before identities)");

        // Per image, as run_query decides: an indexed, unchanged file by its row, else its bytes.
        std::vector<std::pair<std::string, std::string>> bodies;  // content type, body
        bool any_to_embed = false;
        for (const auto& image : images) {
            if (auto record = current_record(*store, image)) {
                bodies.emplace_back("application/json", nlohmann::json{{"id", record->id}}.dump());
                continue;
            }
            ImageFile file = read_image_file(image);
            if (!file.ok()) return local(fmt::format("{}: {}", image.string(), file.error));
            bodies.emplace_back("application/octet-stream", std::move(file.bytes));
            any_to_embed = true;
        }
        std::optional<ModelFile> model;
        if (any_to_embed) model = model_for_existing_store(*store, options.model);
        const std::optional<Precision> precision = expected_precision(options.precision, *store);
        // The recipe a local run would use (and its refusal of --fast-decode on an exact store).
        const PreprocessSpec preprocessing = preprocessing_for_store(*store, options.fast_decode);
        const std::string target = search_target(options, state, model ? &*model : nullptr, precision, preprocessing);

        QueryReport report;
        report.metric = store->settings().metric;
        for (size_t i = 0; i < images.size(); ++i) {
            const LocalReply reply = client->post(target, bodies[i].first, bodies[i].second, kServerAnswerSeconds);
            if (reply.status != 200) return local(fmt::format("the server answered {}: {}", reply.status, error_of(reply)));
            ServedHits served = parse_answer(reply.body);
            report.index_kind = served.index_kind;
            QueryResult result;
            result.query = images[i];
            result.hits = std::move(served.hits);
            report.results.push_back(std::move(result));
        }
        // What a local run would have said, in its order.
        if (const std::string unfinished = unfinished_index_run_notice(*store); !unfinished.empty()) log_warning(unfinished);
        if (model) warn_if_untrained(*model);
        log_debug(fmt::format("{} answered by the server at {} in {:.3f} s", counted(images.size(), "query", "queries"),
                              client->path().string(),
                              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()));
        return report;
    } catch (const std::exception& e) {
        return local(e.what());
    }
}

}  // namespace cbir
