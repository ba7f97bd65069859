<%-- redirect.jsp?to=LOCATION answers 302 with that Location. --%>
<%@ page trimDirectiveWhitespaces="true" session="false" %>
<%
    response.sendRedirect(request.getParameter("to"));
%>
