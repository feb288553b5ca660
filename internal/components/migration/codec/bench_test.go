package codec

import (
	"testing"
)

// benchBatch is 256 pages (1 MiB): 60% zero, 30% text-like, 10% random.
var benchBatch = testBatch(256, 2026)

func BenchmarkCompress(b *testing.B) {
	for _, c := range codecs {
		b.Run(c.Name(), func(b *testing.B) {
			dst := make([]byte, 0, 2*len(benchBatch))
			var err error
			b.SetBytes(int64(len(benchBatch)))
			b.ReportAllocs()
			for b.Loop() {
				if dst, err = c.Compress(dst[:0], benchBatch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(benchBatch))/float64(len(dst)), "ratio")
		})
	}
}

func BenchmarkDecompress(b *testing.B) {
	for _, c := range codecs {
		b.Run(c.Name(), func(b *testing.B) {
			frame, err := c.Compress(nil, benchBatch)
			if err != nil {
				b.Fatal(err)
			}
			out := make([]byte, 0, len(benchBatch))
			b.SetBytes(int64(len(benchBatch)))
			b.ReportAllocs()
			for b.Loop() {
				if out, err = c.Decompress(out[:0], frame, len(benchBatch)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(benchBatch))/float64(len(frame)), "ratio")
		})
	}
}

// BenchmarkCompressParallel: several streams sharing one codec.
func BenchmarkCompressParallel(b *testing.B) {
	for _, c := range codecs[1:] {
		b.Run(c.Name(), func(b *testing.B) {
			b.SetBytes(int64(len(benchBatch)))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				dst := make([]byte, 0, 2*len(benchBatch))
				for pb.Next() {
					dst, _ = c.Compress(dst[:0], benchBatch)
				}
			})
		})
	}
}
