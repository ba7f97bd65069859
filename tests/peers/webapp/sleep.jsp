<%-- sleep.jsp?ms=N waits N milliseconds before answering, for timeout tests. --%>
<%@ page contentType="text/plain; charset=UTF-8" trimDirectiveWhitespaces="true" session="false" %>
<%
    long ms = Long.parseLong(request.getParameter("ms"));
    Thread.sleep(ms);
    out.print("node=" + System.getProperty("pyhttpd.node") + "\n");
    out.print("slept=" + ms + "\n");
%>
