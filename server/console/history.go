package console

import (
	"strconv"
	"strings"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// Size of the battery sparkline on the terminal page, in SVG user units.
const (
	sparkWidth  = 240
	sparkHeight = 40
)

// batteryLine returns the points of an SVG polyline of the battery levels
// in history (newest first), oldest on the left, placed by sample time;
// "" when fewer than two samples report a level. It is drawn on the server
// so that the page needs no script.
func batteryLine(history []*pb.TerminalStatusSample) string {
	type point struct {
		t     int64 // unix nanoseconds
		level uint32
	}
	var pts []point
	for i := len(history) - 1; i >= 0; i-- {
		s := history[i]
		if s.GetStatus().BatteryPercent != nil && s.GetSampleTime() != nil {
			pts = append(pts, point{s.GetSampleTime().AsTime().UnixNano(), min(s.GetStatus().GetBatteryPercent(), 100)})
		}
	}
	if len(pts) < 2 {
		return ""
	}
	span := pts[len(pts)-1].t - pts[0].t
	var b strings.Builder
	for i, p := range pts {
		if i > 0 {
			b.WriteByte(' ')
		}
		// Samples taken at one instant are spread evenly instead.
		x := float64(i) / float64(len(pts)-1) * sparkWidth
		if span > 0 {
			x = float64(p.t-pts[0].t) / float64(span) * sparkWidth
		}
		y := sparkHeight - float64(p.level)/100*sparkHeight
		b.WriteString(strconv.FormatFloat(x, 'f', 1, 64))
		b.WriteByte(',')
		b.WriteString(strconv.FormatFloat(y, 'f', 1, 64))
	}
	return b.String()
}
