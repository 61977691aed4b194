package migrationanalyticsconnector

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"
)

// fleetConnector is the state both halves feed, and the timer that emits the fleet's figures.
type fleetConnector struct {
	cfg     *Config
	logger  *zap.Logger
	next    consumer.Metrics
	state   *state
	clock   func() time.Time
	release func()

	lifecycle sync.Mutex
	running   int
	stop      chan struct{}
	done      chan struct{}
}

func newFleetConnector(cfg *Config, logger *zap.Logger, next consumer.Metrics) *fleetConnector {
	return &fleetConnector{cfg: cfg, logger: logger, next: next, state: newState(cfg, time.Now()), clock: time.Now}
}

func (c *fleetConnector) now() int64 { return c.clock().Unix() }

// start runs the emitting loop once, however many halves start.
func (c *fleetConnector) start() {
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	if c.running++; c.running > 1 {
		return
	}
	c.stop, c.done = make(chan struct{}), make(chan struct{})
	go c.loop(c.stop, c.done)
}

func (c *fleetConnector) shutdown(ctx context.Context) error {
	c.lifecycle.Lock()
	if c.running == 0 {
		c.lifecycle.Unlock()
		return nil
	}
	c.running--
	var done chan struct{}
	if c.running == 0 {
		close(c.stop)
		done = c.done
	}
	c.lifecycle.Unlock()
	if c.release != nil {
		c.release()
	}
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("migration_analytics: shutdown: %w", ctx.Err())
	}
}

func (c *fleetConnector) loop(stop, done chan struct{}) {
	defer close(done)
	ticker := time.NewTicker(c.cfg.EmitInterval)
	defer ticker.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ticker.C:
			if err := c.emit(context.Background()); err != nil {
				c.logger.Warn("migration_analytics: emitting the fleet's figures failed", zap.Error(err))
			}
		}
	}
}

// emit computes the figures now and hands them to the next consumer.
func (c *fleetConnector) emit(ctx context.Context) error {
	md := c.state.evaluate(c.now())
	if md.DataPointCount() == 0 {
		return nil
	}
	if err := c.next.ConsumeMetrics(ctx, md); err != nil {
		return fmt.Errorf("migration_analytics: next consumer: %w", err)
	}
	return nil
}

func (c *fleetConnector) consumeMetrics(_ context.Context, md pmetric.Metrics) error {
	c.state.consumeMetrics(md, c.now())
	return nil
}

func (c *fleetConnector) consumeLogs(_ context.Context, ld plog.Logs) error {
	if errs := c.state.consumeLogs(ld, c.now()); len(errs) > 0 {
		// A malformed sketch is the sender's bug: log it, count it, keep the rest. Returning an
		// error would make the receiver ask for a retry that can never succeed.
		c.logger.Debug("migration_analytics: sketches refused", zap.Error(errors.Join(errs...)))
	}
	return nil
}

type logsHalf struct{ *fleetConnector }

func (h *logsHalf) Start(context.Context, component.Host) error { h.start(); return nil }
func (h *logsHalf) Shutdown(ctx context.Context) error          { return h.shutdown(ctx) }
func (h *logsHalf) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: false}
}
func (h *logsHalf) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	return h.consumeLogs(ctx, ld)
}

type metricsHalf struct{ *fleetConnector }

func (h *metricsHalf) Start(context.Context, component.Host) error { h.start(); return nil }
func (h *metricsHalf) Shutdown(ctx context.Context) error          { return h.shutdown(ctx) }
func (h *metricsHalf) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: false}
}
func (h *metricsHalf) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	return h.consumeMetrics(ctx, md)
}
