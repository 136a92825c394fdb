module github.com/ssehub/ssehub/bench/peers/gosse

go 1.26.8

require github.com/tmaxmax/go-sse v0.12.0
