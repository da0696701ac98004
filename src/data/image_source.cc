#include "data/image_source.h"

namespace shardtrain {

StatusOr<std::unique_ptr<ImageSource>> ImageSource::open(const H5SplitOptions& opts) {
  std::unique_ptr<ImageSource> s(new ImageSource());
  ASSIGN_OR_RETURN(s->reader_, H5SplitReader::open(opts));
  s->fields_ = {{"images", s->reader_->sample_shape(), DType::kFloat32}, {"labels", {}, DType::kInt32}};
  return s;
}

Status ImageSource::read(const std::vector<int64_t>& indices, std::vector<BatchTensor>* out) {
  out->assign(2, BatchTensor{});
  const size_t n = indices.size();
  for (int f = 0; f < 2; ++f) {
    (*out)[f].spec = fields_[f];
    (*out)[f].bytes.resize(n * fields_[f].row_bytes());
  }
  return reader_->read(indices, (*out)[0].data<float>(), (*out)[1].data<int32_t>());
}

}  // namespace shardtrain
