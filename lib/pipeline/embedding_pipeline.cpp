#include "pipeline/embedding_pipeline.h"

#include <atomic>
#include <chrono>
#include <thread>

#include "util/bounded_queue.h"
#include "util/cancel.h"

namespace cbir {

void run_embedding_pipeline(const std::vector<std::filesystem::path>& files, Embedder& embedder,
                            const PreprocessSpec& spec, const PipelineOptions& options,
                            const PipelineCallbacks& callbacks) {
    if (files.empty()) return;
    const size_t batch_size = static_cast<size_t>(std::max(1, options.batch));
    const unsigned readers = options.reader_threads > 0 ? static_cast<unsigned>(options.reader_threads)
                                                        : std::max(1u, std::thread::hardware_concurrency());

    // Two batches of look-ahead keep inference fed without holding more than that in memory.
    BoundedQueue<std::pair<size_t, PreparedImage>> prepared(batch_size * 2);
    std::atomic<size_t> next{0};
    std::atomic<unsigned> readers_left{readers};
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < readers; ++t) {
        threads.emplace_back([&] {
            for (size_t i; !stop_requested() && (i = next.fetch_add(1)) < files.size();)
                if (!prepared.push({i, prepare_image(files[i], spec)})) break;
            if (readers_left.fetch_sub(1) == 1) prepared.close();
        });
    }

    std::vector<size_t> indices;
    std::vector<PreparedImage> images;
    std::vector<float> inputs;
    using Clock = std::chrono::steady_clock;
    auto seconds_since = [](Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); };
    auto flush = [&] {
        if (images.empty()) return;
        const auto started = Clock::now();
        const std::vector<float> vectors = embedder.embed(inputs.data(), static_cast<int>(images.size()));
        if (options.times) options.times->inference_seconds += seconds_since(started);
        if (callbacks.on_batch) callbacks.on_batch(indices, images, vectors, embedder.dimension());
        indices.clear();
        images.clear();
        inputs.clear();
    };
    size_t done = 0;
    try {
        for (;;) {
            const auto waiting = Clock::now();
            auto item = prepared.pop();
            if (options.times) options.times->waiting_seconds += seconds_since(waiting);
            if (!item) break;
            ++done;
            if (!item->second.ok()) {
                if (callbacks.on_failure) callbacks.on_failure(item->first, item->second.error);
            } else {
                inputs.insert(inputs.end(), item->second.input.begin(), item->second.input.end());
                item->second.input = {};
                indices.push_back(item->first);
                images.push_back(std::move(item->second));
                if (images.size() == batch_size) flush();
            }
            if (callbacks.on_progress) callbacks.on_progress(done, files.size());
            if (stop_requested()) break;  // what is prepared is still embedded and committed below
        }
        flush();
        prepared.close();
    } catch (...) {
        prepared.close();  // readers blocked on a full queue wake up and stop
        for (auto& t : threads) t.join();
        throw;
    }
    for (auto& t : threads) t.join();
}

}  // namespace cbir
