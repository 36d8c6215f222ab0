#include "serve/embedding_batcher.h"

#include <algorithm>

#include "util/error.h"

namespace cbir {

EmbeddingBatcher::EmbeddingBatcher(Embedder& embedder, size_t values_per_image, int max_batch)
    : embedder_(embedder), values_per_image_(values_per_image), max_batch_(static_cast<size_t>(std::max(max_batch, 1))) {
    worker_ = std::thread([this] { run(); });
}

EmbeddingBatcher::~EmbeddingBatcher() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    worker_.join();
}

std::vector<float> EmbeddingBatcher::embed(std::vector<float> input) {
    if (input.size() != values_per_image_) throw Error("embedding input of the wrong size");
    Job job;
    job.input = std::move(input);
    auto result = job.result.get_future();
    {
        std::lock_guard<std::mutex> lock(mutex_);
        queue_.push_back(std::move(job));
    }
    wake_.notify_one();
    return result.get();
}

size_t EmbeddingBatcher::batches_run() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return batches_run_;
}

size_t EmbeddingBatcher::images_embedded() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return images_embedded_;
}

void EmbeddingBatcher::run() {
    std::vector<Job> batch;
    std::vector<float> inputs;
    for (;;) {
        {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping, and nothing left to embed
            // No waiting for a batch to fill: a lone request runs at once, and whatever arrived during
            // the previous pass forms the next batch.
            while (!queue_.empty() && batch.size() < max_batch_) {
                batch.push_back(std::move(queue_.front()));
                queue_.pop_front();
            }
        }
        inputs.clear();
        for (const Job& job : batch) inputs.insert(inputs.end(), job.input.begin(), job.input.end());
        std::vector<float> vectors;
        std::exception_ptr failure;
        try {
            vectors = embedder_.embed(inputs.data(), static_cast<int>(batch.size()));
        } catch (...) {
            failure = std::current_exception();
        }
        {
            // Counted before any caller is answered, so a caller sees its own pass in the counts.
            std::lock_guard<std::mutex> lock(mutex_);
            ++batches_run_;
            images_embedded_ += batch.size();
        }
        if (failure) {
            for (Job& job : batch) job.result.set_exception(failure);
        } else {
            const size_t dimension = vectors.size() / batch.size();
            for (size_t i = 0; i < batch.size(); ++i)
                batch[i].result.set_value(std::vector<float>(vectors.begin() + static_cast<long>(i * dimension),
                                                             vectors.begin() + static_cast<long>((i + 1) * dimension)));
        }
        batch.clear();
    }
}

}  // namespace cbir
