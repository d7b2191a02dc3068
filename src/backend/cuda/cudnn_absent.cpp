// SPDX-License-Identifier: Apache-2.0
// CudnnAttention where this build has no cuDNN (the emulated device, or a CUDA Toolkit
// without it): never made, so rabbit's kernel does every attention.
#include "backend/cuda/cudnn_attention.h"

#include "common/error.h"

namespace rabbit {

struct CudnnAttention::State {
    std::string refusal = "this rabbit was built without cuDNN";
};

bool CudnnAttention::built() { return false; }

std::string CudnnAttention::check_descriptors(const CudnnSdpaArgs&) { return "this rabbit was built without cuDNN"; }

CudnnAttention::CudnnAttention() {
    throw Error(ExitCode::unsupported, "--attention cudnn: this rabbit was built without cuDNN");
}

CudnnAttention::~CudnnAttention() = default;

bool CudnnAttention::run(const CudnnSdpaArgs&, cudaStream_t) { return false; }

const std::string& CudnnAttention::refusal() const { return s_->refusal; }

size_t CudnnAttention::graphs_built() const { return 0; }

} // namespace rabbit
