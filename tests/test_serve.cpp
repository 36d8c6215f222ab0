// The pieces of `cbir serve` below HTTP: the batcher that shares forward passes between request
// threads, and the per-route statistics. The HTTP API itself is tested end to end (serve_test.py).
#include <doctest/doctest.h>

#include <thread>

#include "embed/embedder.h"
#include "pipeline/prepare.h"
#include "serve/embedding_batcher.h"
#include "serve/request_stats.h"
#include "test_support.h"

using namespace cbir;

TEST_CASE("serve: concurrent requests share forward passes and get their own image's vector") {
    EmbedderOptions options;
    options.optimize = false;
    auto embedder = Embedder::load(test::untrained_model(), options);
    const auto reference = test::reference_seed_features();
    std::vector<std::string> names;
    std::vector<std::vector<float>> inputs;
    for (const auto& [name, features] : reference) {
        PreparedImage image = prepare_image(test::seed_dir() / (name + ".jpg"), PreprocessSpec{});
        REQUIRE_MESSAGE(image.ok(), image.error);
        names.push_back(name);
        inputs.push_back(image.input);
    }
    EmbeddingBatcher batcher(*embedder, PreprocessSpec{}.values_per_image(), 8);
    constexpr int kRounds = 4;  // each of the 7 threads asks 4 times
    std::vector<std::vector<std::vector<float>>> answers(names.size());
    std::vector<std::thread> threads;
    for (size_t t = 0; t < names.size(); ++t)
        threads.emplace_back([&, t] {
            for (int r = 0; r < kRounds; ++r) answers[t].push_back(batcher.embed(inputs[t]));
        });
    for (auto& thread : threads) thread.join();

    CHECK(batcher.images_embedded() == names.size() * kRounds);
    CHECK(batcher.batches_run() < batcher.images_embedded());  // some passes carried several requests
    for (size_t t = 0; t < names.size(); ++t)
        for (const auto& vector : answers[t]) {
            CAPTURE(names[t]);
            CHECK(test::relative_l2_error(vector, reference.at(names[t])) < 0.005);  // its own, not a neighbour's
        }
    CHECK_THROWS(batcher.embed(std::vector<float>(10)));  // wrong input size: refused, not embedded
}

TEST_CASE("serve: request statistics count errors and take percentiles over a bounded window") {
    RequestStats stats(100);
    for (int i = 1; i <= 100; ++i) stats.record("POST /search", i == 7 ? 422 : 200, i);
    for (int i = 0; i < 100; ++i) stats.record("POST /search", 200, 1000);  // the window moves on
    stats.record("GET /health", 200, 0.5);
    const auto routes = stats.snapshot();
    REQUIRE(routes.size() == 2);
    const RouteStats& search = routes[1].route == "POST /search" ? routes[1] : routes[0];
    CHECK(search.requests == 200);
    CHECK(search.errors == 1);
    CHECK(search.p50_ms == 1000);
    CHECK(search.max_ms == 1000);

    RequestStats fresh(1000);
    for (int i = 1; i <= 100; ++i) fresh.record("r", 200, i);
    const RouteStats r = fresh.snapshot().front();
    CHECK(r.p50_ms == 50);
    CHECK(r.p99_ms == 99);
}
