// SPDX-License-Identifier: Apache-2.0
// The SDPA forward graph in cuDNN's backend API, as its runtime-fusion flash-attention engines
// recognise it (the graph cudnn-frontend's SDPA node lowers to, written here as plain
// descriptors):
//
//   S  = Q KT                       [1, heads, tokens, kv_len] f32 (virtual); KT is the cache's K
//                                   seen as [1, kv_heads, head_dim, kv_len] through its strides,
//                                   the heads of a group sharing it (grouped-query)
//   S  = S * scale
//   S  = (row + kv_len - tokens >= col) ? S : -inf     bottom-right causal mask (GEN_INDEX rows
//                                   and columns, integer ADD/SUB, CMP_GE, BINARY_SELECT)
//   M  = max_col S,  E = exp(S - M),  Z = sum_col E,  stats = M + log Z (virtual), P = E / Z
//   O  = P V                        [1, heads, tokens, head_dim] written as [tokens, heads * d]
//
// Every tensor that lives in memory is described by its strides where it already is (Q in the
// part's rows, K and V in the cache, O in attn): nothing is copied for cuDNN. Unverified:
// compiled, not run on a GPU.
#include "backend/cuda/cudnn_attention.h"

#include "backend/cuda/sdpa_shape.h"
#include "common/error.h"

#include <cudnn.h>
#include <spdlog/fmt/fmt.h>

#include <deque>
#include <limits>
#include <stdexcept>
#include <utility>
#include <vector>

namespace rabbit {

namespace {

// A cuDNN call that failed while building a graph: the shape is refused, not the run.
struct CudnnBuildError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

void build_check(cudnnStatus_t s, const char* what) {
    if (s != CUDNN_STATUS_SUCCESS) throw CudnnBuildError(fmt::format("{}: {}", what, cudnnGetErrorString(s)));
}

[[noreturn]] void run_fail(cudnnStatus_t s, const char* what) {
    char detail[256] = {};
    cudnnGetLastErrorString(detail, sizeof detail);
    throw Error(ExitCode::internal, fmt::format("cuDNN error in {}: {}{}{}", what, cudnnGetErrorString(s),
                                                detail[0] ? ": " : "", detail));
}

// A backend descriptor that destroys itself.
class Desc {
public:
    explicit Desc(cudnnBackendDescriptorType_t type) {
        build_check(cudnnBackendCreateDescriptor(type, &d_), "cudnnBackendCreateDescriptor");
    }
    ~Desc() {
        if (d_) cudnnBackendDestroyDescriptor(d_);
    }
    Desc(Desc&& o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
    Desc& operator=(Desc&& o) noexcept {
        std::swap(d_, o.d_);
        return *this;
    }
    Desc(const Desc&) = delete;
    Desc& operator=(const Desc&) = delete;

    cudnnBackendDescriptor_t get() const { return d_; }
    template <class T>
    Desc& set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, const T* values, int64_t count = 1) {
        build_check(cudnnBackendSetAttribute(d_, name, type, count, values), "cudnnBackendSetAttribute");
        return *this;
    }
    Desc& set_desc(cudnnBackendAttributeName_t name, cudnnBackendDescriptor_t d) {
        return set(name, CUDNN_TYPE_BACKEND_DESCRIPTOR, &d);
    }
    Desc& finalize() {
        build_check(cudnnBackendFinalize(d_), "cudnnBackendFinalize");
        return *this;
    }

private:
    cudnnBackendDescriptor_t d_ = nullptr;
};

// The tensors that the variant pack points at.
enum Uid : int64_t { uid_q = 1, uid_k, uid_v, uid_o, uid_scale, uid_neg_inf, uid_kv_len, uid_tokens, uid_virtual = 100 };

using Dims = std::vector<int64_t>;

// A cached shape: the plan and what it needs alive, or the reason cuDNN refused the shape.
struct Plan {
    std::deque<Desc> keep;        // every descriptor the plan was built from (a deque: they never move)
    Desc* plan = nullptr;         // within keep
    int64_t workspace = 0;
    std::string refusal;          // non-empty: run our kernel for this shape
};

// Builds one operation graph: tensors and operations, kept alive in `keep`.
class GraphBuilder {
public:
    explicit GraphBuilder(std::deque<Desc>& keep) : keep_(keep) {}

    cudnnBackendDescriptor_t tensor(int64_t uid, cudnnDataType_t type, const Dims& dims, const Dims& strides,
                                    bool is_virtual, bool by_value = false) {
        const int64_t align = 16;
        Desc& t = add(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
        t.set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, &uid)
            .set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, &type)
            .set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, dims.data(), int64_t(dims.size()))
            .set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, strides.data(), int64_t(strides.size()))
            .set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, &align);
        if (is_virtual) t.set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, &is_virtual);
        if (by_value) t.set(CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, &by_value);
        return t.finalize().get();
    }
    // A virtual tensor of the given shape (intermediate results never reach memory).
    cudnnBackendDescriptor_t temp(cudnnDataType_t type, const Dims& dims, const Dims& strides) {
        return tensor(next_uid_++, type, dims, strides, true);
    }
    cudnnBackendDescriptor_t scalar(int64_t uid, cudnnDataType_t type) {
        return tensor(uid, type, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true);
    }

    // y = mode(x, b, t); b and t may be null; axis >= 0 for GEN_INDEX (and the index arithmetic).
    void pointwise(cudnnPointwiseMode_t mode, cudnnDataType_t math, cudnnBackendDescriptor_t x,
                   cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t y, cudnnBackendDescriptor_t t = nullptr,
                   int64_t axis = -1) {
        Desc& pw = add(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
        pw.set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, &mode)
            .set(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, &math);
        if (axis >= 0) pw.set(CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, &axis);
        pw.finalize();
        Desc& op = add(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
        op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw.get())
            .set_desc(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x)
            .set_desc(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y);
        if (b) op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b);
        if (t) op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_TDESC, t);
        ops_.push_back(op.finalize().get());
    }
    // c = a b, batched over the leading dimensions (b's heads broadcast over a's group).
    void matmul(cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t c) {
        const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
        Desc& mm = add(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
        mm.set(CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, &f32).finalize();
        Desc& op = add(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
        op.set_desc(CUDNN_ATTR_OPERATION_MATMUL_ADESC, a)
            .set_desc(CUDNN_ATTR_OPERATION_MATMUL_BDESC, b)
            .set_desc(CUDNN_ATTR_OPERATION_MATMUL_CDESC, c)
            .set_desc(CUDNN_ATTR_OPERATION_MATMUL_DESC, mm.get());
        ops_.push_back(op.finalize().get());
    }
    // y = reduce(x) over the dimensions where y has extent 1.
    void reduce(cudnnReduceTensorOp_t mode, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
        const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
        Desc& r = add(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
        r.set(CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, &mode)
            .set(CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, &f32)
            .finalize();
        Desc& op = add(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
        op.set_desc(CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x)
            .set_desc(CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y)
            .set_desc(CUDNN_ATTR_OPERATION_REDUCTION_DESC, r.get());
        ops_.push_back(op.finalize().get());
    }
    cudnnBackendDescriptor_t graph(cudnnHandle_t handle) {
        Desc& g = add(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
        g.set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, ops_.data(), int64_t(ops_.size()))
            .set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, &handle);
        return g.finalize().get();
    }

private:
    Desc& add(cudnnBackendDescriptorType_t type) {
        keep_.emplace_back(type);
        return keep_.back();
    }
    std::deque<Desc>& keep_;
    std::vector<cudnnBackendDescriptor_t> ops_;
    int64_t next_uid_ = uid_virtual;
};

// The operation graph of SDPA forward for shape s (the steps in the file's comment).
cudnnBackendDescriptor_t sdpa_graph(cudnnHandle_t handle, const SdpaShape& s, std::deque<Desc>& keep) {
    const cudnnDataType_t io = Elem(s.elem) == Elem::f16 ? CUDNN_DATA_HALF : CUDNN_DATA_BFLOAT16;
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT, i32 = CUDNN_DATA_INT32, boolean = CUDNN_DATA_BOOLEAN;
    const int64_t h = s.heads, hk = s.kv_heads, d = s.head_dim, sq = s.tokens, skv = s.kv_len, ctx = s.cache_len;
    GraphBuilder g(keep);
    // Q and O in the rows rabbit's kernel reads and writes: token t, head h at (t * heads + h) * d.
    const auto q = g.tensor(uid_q, io, {1, h, sq, d}, {sq * h * d, d, h * d, 1}, false);
    const auto o = g.tensor(uid_o, io, {1, h, sq, d}, {sq * h * d, d, h * d, 1}, false);
    // The cache: KV head j, position p at (j * cache_len + p) * d; K transposed by its strides.
    const auto kt = g.tensor(uid_k, io, {1, hk, d, skv}, {hk * ctx * d, ctx * d, 1, d}, false);
    const auto v = g.tensor(uid_v, io, {1, hk, skv, d}, {hk * ctx * d, ctx * d, d, 1}, false);
    const auto scale = g.scalar(uid_scale, f32);
    const auto neg_inf = g.scalar(uid_neg_inf, f32);
    const auto kv_len = g.scalar(uid_kv_len, i32);
    const auto tokens = g.scalar(uid_tokens, i32);

    const Dims sd = {1, h, sq, skv}, ss = {h * sq * skv, sq * skv, skv, 1};
    const Dims rd = {1, h, sq, 1}, rs = {h * sq, sq, 1, 1};
    const auto s0 = g.temp(f32, sd, ss);
    g.matmul(q, kt, s0);
    const auto s1 = g.temp(f32, sd, ss);
    g.pointwise(CUDNN_POINTWISE_MUL, f32, s0, scale, s1);

    const auto row = g.temp(i32, sd, ss), col = g.temp(i32, sd, ss);
    g.pointwise(CUDNN_POINTWISE_GEN_INDEX, f32, s1, nullptr, row, nullptr, 2);
    g.pointwise(CUDNN_POINTWISE_GEN_INDEX, f32, s1, nullptr, col, nullptr, 3);
    const auto row_kv = g.temp(i32, sd, ss), last = g.temp(i32, sd, ss);
    g.pointwise(CUDNN_POINTWISE_ADD, i32, row, kv_len, row_kv, nullptr, 3);
    g.pointwise(CUDNN_POINTWISE_SUB, i32, row_kv, tokens, last, nullptr, 3);
    const auto seen = g.temp(boolean, sd, ss);
    g.pointwise(CUDNN_POINTWISE_CMP_GE, boolean, last, col, seen);
    const auto masked = g.temp(f32, sd, ss);
    g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, f32, s1, neg_inf, masked, seen);

    const auto m = g.temp(f32, rd, rs);
    g.reduce(CUDNN_REDUCE_TENSOR_MAX, masked, m);
    const auto shifted = g.temp(f32, sd, ss), e = g.temp(f32, sd, ss);
    g.pointwise(CUDNN_POINTWISE_SUB, f32, masked, m, shifted);
    g.pointwise(CUDNN_POINTWISE_EXP, f32, shifted, nullptr, e);
    const auto z = g.temp(f32, rd, rs);
    g.reduce(CUDNN_REDUCE_TENSOR_ADD, e, z);
    // The softmax statistics, virtual: inference needs none, but the engines match the pattern
    // with them (as the frontend builds it).
    const auto log_z = g.temp(f32, rd, rs), stats = g.temp(f32, rd, rs);
    g.pointwise(CUDNN_POINTWISE_LOG, f32, z, nullptr, log_z);
    g.pointwise(CUDNN_POINTWISE_ADD, f32, m, log_z, stats);
    // P in the I/O type: the second product's A operand is what the engines take it in.
    const auto p = g.temp(io, sd, ss);
    g.pointwise(CUDNN_POINTWISE_DIV, f32, e, z, p);
    g.matmul(p, v, o);
    return handle ? g.graph(handle) : nullptr; // no handle: the descriptors only (check_descriptors)
}

// The engine configurations heuristics mode A ranks for graph `op_graph`, best first.
std::vector<Desc> ranked_configs(cudnnBackendDescriptor_t op_graph, std::deque<Desc>& keep) {
    const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    keep.emplace_back(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    Desc& heur = keep.back();
    heur.set_desc(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, op_graph)
        .set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, &mode)
        .finalize();
    int64_t count = 0;
    build_check(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0,
                                         &count, nullptr),
                "engine heuristics");
    std::vector<Desc> configs;
    std::vector<cudnnBackendDescriptor_t> raw;
    for (int64_t i = 0; i < count; ++i) {
        configs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
        raw.push_back(configs.back().get());
    }
    int64_t got = 0;
    if (count > 0)
        build_check(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                             count, &got, raw.data()),
                    "engine heuristics");
    configs.erase(configs.begin() + got, configs.end());
    return configs;
}

// The best-ranked configuration that finalizes into a plan needing at most `workspace` bytes.
Plan build_plan(cudnnHandle_t handle, const SdpaShape& s, size_t workspace) {
    Plan p;
    try {
        const cudnnBackendDescriptor_t op_graph = sdpa_graph(handle, s, p.keep);
        std::vector<Desc> configs = ranked_configs(op_graph, p.keep);
        std::string last = configs.empty() ? "no engine configuration" : "";
        for (Desc& cfg : configs) {
            Desc plan(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
            plan.set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, &handle)
                .set_desc(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, cfg.get());
            if (cudnnBackendFinalize(plan.get()) != CUDNN_STATUS_SUCCESS) {
                last = "no engine configuration finalizes";
                continue;
            }
            int64_t bytes = 0;
            build_check(cudnnBackendGetAttribute(plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                                 CUDNN_TYPE_INT64, 1, nullptr, &bytes),
                        "plan workspace size");
            if (bytes < 0 || uint64_t(bytes) > workspace) {
                last = fmt::format("its plans need {} bytes of workspace, more than the {} planned", bytes, workspace);
                continue;
            }
            p.keep.push_back(std::move(cfg));
            p.keep.push_back(std::move(plan));
            p.plan = &p.keep.back();
            p.workspace = bytes;
            return p;
        }
        p.refusal = last;
    } catch (const CudnnBuildError& e) {
        p.refusal = e.what();
    }
    p.keep.clear();
    return p;
}

} // namespace

// Plans of the shapes seen last: a prompt in parts asks for one new shape per part, which every
// layer of that part then reuses.
constexpr size_t k_cudnn_cached_plans = 8;

struct CudnnAttention::State {
    cudnnHandle_t handle = nullptr;
    ShapeCache<Plan> plans{k_cudnn_cached_plans};
    std::string refusal;
    size_t built = 0;
};

bool CudnnAttention::built() { return true; }

CudnnAttention::CudnnAttention() : s_(std::make_unique<State>()) {
    const cudnnStatus_t st = cudnnCreate(&s_->handle);
    if (st != CUDNN_STATUS_SUCCESS)
        throw Error(ExitCode::unsupported, fmt::format("cuDNN could not start on this GPU: {}", cudnnGetErrorString(st)));
}

CudnnAttention::~CudnnAttention() {
    s_->plans.clear(); // the plans go before their handle
    if (s_->handle) cudnnDestroy(s_->handle);
}

const std::string& CudnnAttention::refusal() const { return s_->refusal; }

size_t CudnnAttention::graphs_built() const { return s_->built; }

namespace {

SdpaShape shape_of(const CudnnSdpaArgs& a) {
    SdpaShape s;
    s.tokens = a.tokens;
    s.kv_len = a.kv_len;
    s.cache_len = a.cache_len;
    s.heads = a.heads;
    s.kv_heads = a.kv_heads;
    s.head_dim = a.head_dim;
    s.elem = int(a.elem);
    return s;
}

} // namespace

std::string CudnnAttention::check_descriptors(const CudnnSdpaArgs& a) {
    if (a.elem == Elem::f32) return "f32 attention";
    std::deque<Desc> keep;
    try {
        sdpa_graph(nullptr, shape_of(a), keep);
    } catch (const CudnnBuildError& e) {
        char detail[256] = {};
        cudnnGetLastErrorString(detail, sizeof detail);
        return fmt::format("{} (descriptor {}){}{}", e.what(), keep.size(), detail[0] ? ": " : "", detail);
    }
    return "";
}

bool CudnnAttention::run(const CudnnSdpaArgs& a, cudaStream_t stream) {
    if (a.elem == Elem::f32) {
        s_->refusal = "f32 attention";
        return false;
    }
    const SdpaShape shape = shape_of(a);
    Plan* p = s_->plans.find(shape);
    if (!p) {
        p = &s_->plans.put(shape, build_plan(s_->handle, shape, a.workspace_bytes));
        ++s_->built;
    }
    if (!p->plan) {
        s_->refusal = p->refusal;
        return false;
    }
    // By-value scalars: read from host memory when the plan is queued.
    float scale = a.scale, neg_inf = -std::numeric_limits<float>::infinity();
    int32_t kv_len = int32_t(a.kv_len), tokens = int32_t(a.tokens);
    int64_t uids[] = {uid_q, uid_k, uid_v, uid_o, uid_scale, uid_neg_inf, uid_kv_len, uid_tokens};
    void* ptrs[] = {const_cast<void*>(a.q), const_cast<void*>(a.k_cache), const_cast<void*>(a.v_cache), a.out,
                    &scale, &neg_inf, &kv_len, &tokens};
    void* workspace = p->workspace > 0 ? a.workspace : nullptr;
    cudnnBackendDescriptor_t pack = nullptr;
    cudnnStatus_t st = cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &pack);
    if (st != CUDNN_STATUS_SUCCESS) run_fail(st, "the variant pack");
    const int64_t n = int64_t(sizeof uids / sizeof uids[0]);
    st = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
    if (st == CUDNN_STATUS_SUCCESS)
        st = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs);
    if (st == CUDNN_STATUS_SUCCESS)
        st = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
    if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendFinalize(pack);
    if (st == CUDNN_STATUS_SUCCESS) st = cudnnSetStream(s_->handle, stream);
    if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendExecute(s_->handle, p->plan->get(), pack);
    cudnnBackendDestroyDescriptor(pack);
    if (st != CUDNN_STATUS_SUCCESS) run_fail(st, "cudnnBackendExecute (fused attention)");
    return true;
}

} // namespace rabbit
